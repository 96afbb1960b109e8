//! The checkpoint's own chat template, rendered with minijinja the way transformers'
//! `apply_chat_template` renders it with jinja2 (`trim_blocks`, `lstrip_blocks`, a
//! `raise_exception` function, `add_generation_prompt`).

use std::path::{Path, PathBuf};

use r1_data::Message;
use serde_json::Value;

use crate::error::ModelError;

/// The chat template of Qwen2-VL / Qwen2.5-VL instruct checkpoints: a default system turn when
/// the conversation has none, `<|im_start|>{role}\n{content}<|im_end|>\n` per turn, an image
/// part as `<|vision_start|><|image_pad|><|vision_end|>`, the generation prompt
/// `<|im_start|>assistant\n`. The project's own checkpoints ship it as `chat_template.jinja`.
pub const QWEN_VL_CHAT_TEMPLATE: &str = concat!(
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}",
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}",
    "<|im_start|>{{ message['role'] }}\n",
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n",
    "{% else %}{% for content in message['content'] %}",
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}",
    "{% set image_count.value = image_count.value + 1 %}",
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}",
    "<|vision_start|><|image_pad|><|vision_end|>",
    "{% elif content['type'] == 'video' or 'video' in content %}",
    "{% set video_count.value = video_count.value + 1 %}",
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}",
    "<|vision_start|><|video_pad|><|vision_end|>",
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n",
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
);

/// A Jinja chat template and the file it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatTemplate {
    source: String,
    path: PathBuf,
}

impl ChatTemplate {
    /// A template from its source; `path` is used in error messages. The source is compiled
    /// once here so a broken template fails at load time, not at the first prompt.
    pub fn new(source: impl Into<String>, path: &Path) -> Result<Self, ModelError> {
        let template = Self { source: source.into(), path: path.to_path_buf() };
        template.environment().template_from_str(&template.source).map_err(|e| template.error(&e))?;
        Ok(template)
    }

    /// Finds the template of a checkpoint directory, in transformers' order of preference:
    /// `chat_template.jinja`, `chat_template.json` (`{"chat_template": ...}`), then the
    /// `chat_template` field of `tokenizer_config.json` (a string, or a list of named
    /// templates of which `default` is taken).
    pub fn from_dir(dir: &Path) -> Result<Self, ModelError> {
        let jinja = dir.join("chat_template.jinja");
        if jinja.is_file() {
            let source = std::fs::read_to_string(&jinja).map_err(|e| ModelError::io(&jinja, e))?;
            return Self::new(source, &jinja);
        }
        for name in ["chat_template.json", "tokenizer_config.json"] {
            let path = dir.join(name);
            if !path.is_file() {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
            let value: Value =
                serde_json::from_str(&text).map_err(|source| ModelError::Json { path: path.clone(), source })?;
            if let Some(source) = template_field(&value, &path)? {
                return Self::new(source, &path);
            }
        }
        Err(ModelError::Template {
            path: dir.to_path_buf(),
            message: "no chat template: expected chat_template.jinja, chat_template.json or a `chat_template` \
                      field in tokenizer_config.json"
                .into(),
        })
    }

    /// The template source.
    pub fn source(&self) -> &str {
        &self.source
    }

    fn environment(&self) -> minijinja::Environment<'static> {
        let mut env = minijinja::Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.add_function("raise_exception", |message: String| -> Result<String, minijinja::Error> {
            Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, message))
        });
        env
    }

    fn error(&self, e: &minijinja::Error) -> ModelError {
        // minijinja's Display omits the cause chain; the detail names the failing construct.
        let detail = e.detail().map(|d| format!(" ({d})")).unwrap_or_default();
        ModelError::Template { path: self.path.clone(), message: format!("{e}{detail}") }
    }

    /// Renders `messages` (Hugging Face chat format: image parts render as the model's image
    /// placeholder), followed by the assistant's turn opener when `add_generation_prompt`.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String, ModelError> {
        let env = self.environment();
        let template = env.template_from_str(&self.source).map_err(|e| self.error(&e))?;
        template
            .render(minijinja::context! { messages => messages, add_generation_prompt => add_generation_prompt })
            .map_err(|e| self.error(&e))
    }
}

/// The `chat_template` field of a JSON file: a string, or `[{"name", "template"}]` of which
/// the `default` entry is taken. `None` when the field is absent.
fn template_field(value: &Value, path: &Path) -> Result<Option<String>, ModelError> {
    let bad = |message: &str| ModelError::Template { path: path.to_path_buf(), message: message.into() };
    match value.get("chat_template") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Array(named)) => named
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
            .and_then(|t| t.get("template").and_then(Value::as_str))
            .map(|s| Some(s.to_string()))
            .ok_or_else(|| bad("`chat_template` is a list without a `default` entry")),
        Some(_) => Err(bad("`chat_template` must be a string or a list of named templates")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qwen() -> ChatTemplate {
        ChatTemplate::new(QWEN_VL_CHAT_TEMPLATE, Path::new("<memory>")).unwrap()
    }

    #[test]
    fn renders_an_image_turn_with_default_system_and_generation_prompt() {
        let text = qwen().render(&[Message::user_with_image("a.png", "Where next?")], true).unwrap();
        assert_eq!(
            text,
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n\
             <|vision_start|><|image_pad|><|vision_end|>Where next?<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn keeps_a_given_system_turn_and_omits_the_prompt_when_asked() {
        let messages = [Message::text("system", "Be brief."), Message::text("user", "Hi")];
        let text = qwen().render(&messages, false).unwrap();
        assert_eq!(text, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
    }

    #[test]
    fn broken_templates_fail_at_load_with_the_path() {
        let err = ChatTemplate::new("{% for %}", Path::new("dir/chat_template.jinja")).unwrap_err().to_string();
        assert!(err.contains("dir/chat_template.jinja"), "{err}");
    }

    #[test]
    fn raise_exception_surfaces_as_an_error() {
        let t = ChatTemplate::new("{{ raise_exception('only user turns') }}", Path::new("t.jinja")).unwrap();
        let err = t.render(&[], true).unwrap_err().to_string();
        assert!(err.contains("only user turns"), "{err}");
    }

    #[test]
    fn reads_every_file_layout() {
        let dir = tempfile::tempdir().unwrap();
        assert!(ChatTemplate::from_dir(dir.path()).is_err());
        let config = serde_json::json!({"chat_template": [{"name": "default", "template": "A"}, {"name": "tool_use", "template": "B"}]});
        std::fs::write(dir.path().join("tokenizer_config.json"), config.to_string()).unwrap();
        assert_eq!(ChatTemplate::from_dir(dir.path()).unwrap().source(), "A");
        std::fs::write(dir.path().join("chat_template.json"), r#"{"chat_template": "C"}"#).unwrap();
        assert_eq!(ChatTemplate::from_dir(dir.path()).unwrap().source(), "C");
        std::fs::write(dir.path().join("chat_template.jinja"), "D").unwrap();
        assert_eq!(ChatTemplate::from_dir(dir.path()).unwrap().source(), "D");
    }
}
