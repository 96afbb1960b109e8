//! The OpenAI chat-completions contract: requests read from JSON into checked values, the
//! error body every failure is answered with, and the shapes of replies and stream chunks.
//!
//! Request fields taken: `model` (must name the served model), `messages` (roles `system`,
//! `developer` (as `system`), `user`, `assistant`; content a string or a list of `text` and
//! `image_url` parts), `temperature` (0 to 2, default 1), `top_p` (0 to 1], default 1),
//! `max_tokens` or `max_completion_tokens` (at least 1), `n`, `seed`, `stop` (a string or up
//! to 4), `stream`, `stream_options.include_usage`. Fields that would change the reply in ways
//! this server does not do (tools, logprobs, penalties, logit bias, structured output) are
//! refused rather than ignored; any other field is ignored.

use std::path::PathBuf;

use base64::Engine;
use r1_data::{ContentPart, Message};
use serde_json::{Map, Value, json};

/// An error answered as OpenAI does: `status` with `{"error": {"message", "type", "param",
/// "code"}}`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: u16,
    /// `invalid_request_error` (the client's fault) or `server_error`.
    pub kind: &'static str,
    pub message: String,
    /// The request field at fault, e.g. `messages[0].content[1].image_url`.
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

impl ApiError {
    /// 400: a bad value of `param` (or of the request as a whole).
    pub fn invalid(param: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            status: 400,
            kind: "invalid_request_error",
            message: message.into(),
            param: param.map(str::to_string),
            code: None,
        }
    }

    /// 404 for a path the API does not have; 405 for one of its paths with another method.
    pub fn no_route(method: &str, path: &str) -> Self {
        let status = if matches!(path, "/v1/models" | "/v1/chat/completions") { 405 } else { 404 };
        Self { status, ..Self::invalid(None, format!("Invalid URL ({method} {path})")) }
    }

    /// 404 for a model this server does not serve.
    pub fn unknown_model(model: &str, served: &str) -> Self {
        Self {
            status: 404,
            code: Some("model_not_found"),
            ..Self::invalid(
                Some("model"),
                format!("The model `{model}` does not exist; this server serves `{served}`."),
            )
        }
    }

    /// 500: generation failed.
    pub fn server(message: impl Into<String>) -> Self {
        Self { status: 500, kind: "server_error", message: message.into(), param: None, code: None }
    }

    pub fn body(&self) -> Value {
        json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}})
    }
}

/// Where an image part's bytes come from.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageSource {
    /// A `data:image/...;base64,` URL, decoded.
    Data(Vec<u8>),
    /// A local file: a path or a `file://` URL.
    File(PathBuf),
}

/// An image part of the request and the field it came from (for error messages).
#[derive(Debug, Clone, PartialEq)]
pub struct ImagePart {
    pub param: String,
    pub source: ImageSource,
}

/// A checked chat-completions request. `messages` hold one `ContentPart::Image` per entry of
/// `images`, in order; the image's string is only its `param`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Message>,
    pub images: Vec<ImagePart>,
    pub temperature: f64,
    pub top_p: f64,
    /// `None`: the server's default, bounded by what the context leaves.
    pub max_tokens: Option<usize>,
    pub n: usize,
    pub seed: Option<u64>,
    /// Strings that end a reply (not included in it).
    pub stop: Vec<String>,
    pub stream: bool,
    /// Streams end with a chunk holding `usage` (`stream_options.include_usage`).
    pub include_usage: bool,
}

/// Stop strings per request at most, as OpenAI allows.
const MAX_STOP: usize = 4;

impl ChatRequest {
    /// Reads and checks a request body; `max_n` bounds `n`.
    pub fn parse(body: &[u8], max_n: usize) -> Result<Self, ApiError> {
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::invalid(
                None,
                format!("We could not parse the JSON body of your request ({e}). The body must be a JSON object."),
            )
        })?;
        let Value::Object(fields) = value else {
            return Err(ApiError::invalid(None, "The request body must be a JSON object."));
        };
        refuse_unsupported(&fields)?;
        let model = match fields.get("model") {
            Some(Value::String(m)) => m.clone(),
            Some(_) => return Err(ApiError::invalid(Some("model"), "`model` must be a string.")),
            None => return Err(ApiError::invalid(Some("model"), "You must provide a model parameter.")),
        };
        let (messages, images) = parse_messages(fields.get("messages"))?;
        let temperature = number(&fields, "temperature", 1.0, |t| (0.0..=2.0).contains(&t), "between 0 and 2")?;
        let top_p = number(&fields, "top_p", 1.0, |p| p > 0.0 && p <= 1.0, "greater than 0 and at most 1")?;
        // `max_tokens` is the older name of `max_completion_tokens`; it wins when both are sent.
        let max_tokens = match optional_count(&fields, "max_tokens")? {
            Some(m) => Some(("max_tokens", m)),
            None => optional_count(&fields, "max_completion_tokens")?.map(|m| ("max_completion_tokens", m)),
        };
        if let Some((name, 0)) = max_tokens {
            return Err(ApiError::invalid(Some(name), format!("`{name}` must be at least 1.")));
        }
        let max_tokens = max_tokens.map(|(_, m)| m);
        let n = optional_count(&fields, "n")?.unwrap_or(1);
        if n == 0 || n > max_n {
            return Err(ApiError::invalid(
                Some("n"),
                format!("`n` must be between 1 and {max_n} (this server's batch size)."),
            ));
        }
        let seed = match fields.get("seed") {
            None | Some(Value::Null) => None,
            // OpenAI takes any 64-bit integer; negative seeds map to distinct unsigned ones.
            Some(v) => Some(
                v.as_u64()
                    .or_else(|| v.as_i64().map(|s| s as u64))
                    .ok_or_else(|| ApiError::invalid(Some("seed"), "`seed` must be an integer."))?,
            ),
        };
        let stop = match fields.get("stop") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) if items.len() <= MAX_STOP => items
                .iter()
                .map(|s| s.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| ApiError::invalid(Some("stop"), "`stop` entries must be strings."))?,
            Some(_) => {
                return Err(ApiError::invalid(
                    Some("stop"),
                    format!("`stop` must be a string or a list of at most {MAX_STOP} strings."),
                ));
            }
        };
        let stop = stop.into_iter().filter(|s| !s.is_empty()).collect();
        let stream = flag(&fields, "stream")?;
        let include_usage = match fields.get("stream_options") {
            None | Some(Value::Null) => false,
            Some(Value::Object(options)) => flag(options, "include_usage")?,
            Some(_) => return Err(ApiError::invalid(Some("stream_options"), "`stream_options` must be an object.")),
        };
        Ok(Self { model, messages, images, temperature, top_p, max_tokens, n, seed, stop, stream, include_usage })
    }
}

/// Fields whose effect this server does not implement: refused so that a client never gets a
/// reply that silently ignored them.
fn refuse_unsupported(fields: &Map<String, Value>) -> Result<(), ApiError> {
    let unsupported = |name: &str| ApiError::invalid(Some(name), format!("`{name}` is not supported by this server."));
    for name in ["tools", "functions", "tool_choice", "function_call", "audio", "modalities", "prediction"] {
        match fields.get(name) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s == "none" => {}
            Some(Value::Array(a)) if a.is_empty() => {}
            Some(_) => return Err(unsupported(name)),
        }
    }
    if fields.get("logprobs").is_some_and(|v| v.as_bool() == Some(true))
        || fields.get("top_logprobs").is_some_and(|v| !v.is_null())
    {
        return Err(unsupported("logprobs"));
    }
    for name in ["presence_penalty", "frequency_penalty"] {
        if fields.get(name).is_some_and(|v| !v.is_null() && v.as_f64() != Some(0.0)) {
            return Err(unsupported(name));
        }
    }
    if fields.get("logit_bias").is_some_and(|v| v.as_object().is_some_and(|m| !m.is_empty())) {
        return Err(unsupported("logit_bias"));
    }
    let format = fields.get("response_format").and_then(|f| f.get("type")).and_then(Value::as_str);
    if format.is_some_and(|f| f != "text") {
        return Err(unsupported("response_format"));
    }
    Ok(())
}

fn number(
    fields: &Map<String, Value>,
    name: &str,
    default: f64,
    ok: impl Fn(f64) -> bool,
    range: &str,
) -> Result<f64, ApiError> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_f64()
            .filter(|&x| ok(x))
            .ok_or_else(|| ApiError::invalid(Some(name), format!("`{name}` must be a number {range}; got {v}."))),
    }
}

fn optional_count(fields: &Map<String, Value>, name: &str) -> Result<Option<usize>, ApiError> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            v.as_u64().and_then(|n| usize::try_from(n).ok()).map(Some).ok_or_else(|| {
                ApiError::invalid(Some(name), format!("`{name}` must be a non-negative integer; got {v}."))
            })
        }
    }
}

fn flag(fields: &Map<String, Value>, name: &str) -> Result<bool, ApiError> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(ApiError::invalid(Some(name), format!("`{name}` must be a boolean; got {v}."))),
    }
}

fn parse_messages(value: Option<&Value>) -> Result<(Vec<Message>, Vec<ImagePart>), ApiError> {
    let list = match value {
        Some(Value::Array(list)) if !list.is_empty() => list,
        Some(Value::Array(_)) => return Err(ApiError::invalid(Some("messages"), "`messages` must not be empty.")),
        Some(_) => return Err(ApiError::invalid(Some("messages"), "`messages` must be a list of messages.")),
        None => return Err(ApiError::invalid(Some("messages"), "Missing required parameter: 'messages'.")),
    };
    let mut messages = Vec::with_capacity(list.len());
    let mut images = Vec::new();
    for (i, message) in list.iter().enumerate() {
        let at = format!("messages[{i}]");
        let role = match message.get("role").and_then(Value::as_str) {
            Some(role @ ("system" | "user" | "assistant")) => role,
            // OpenAI's newer name for the system turn.
            Some("developer") => "system",
            Some(other) => {
                return Err(ApiError::invalid(
                    Some(&format!("{at}.role")),
                    format!(
                        "Unsupported role {other:?}: this server takes system, developer, user and assistant turns."
                    ),
                ));
            }
            None => return Err(ApiError::invalid(Some(&format!("{at}.role")), "Each message needs a string `role`.")),
        };
        if message.get("tool_calls").is_some_and(|v| !v.is_null()) {
            return Err(ApiError::invalid(
                Some(&format!("{at}.tool_calls")),
                "`tool_calls` are not supported by this server.",
            ));
        }
        let content = match message.get("content") {
            Some(Value::String(text)) => vec![ContentPart::Text { text: text.clone() }],
            Some(Value::Array(parts)) => parts
                .iter()
                .enumerate()
                .map(|(j, part)| parse_part(part, &format!("{at}.content[{j}]"), &mut images))
                .collect::<Result<_, _>>()?,
            _ => {
                return Err(ApiError::invalid(
                    Some(&format!("{at}.content")),
                    "`content` must be a string or a list of text and image_url parts.",
                ));
            }
        };
        messages.push(Message { role: role.to_string(), content });
    }
    Ok((messages, images))
}

fn parse_part(part: &Value, at: &str, images: &mut Vec<ImagePart>) -> Result<ContentPart, ApiError> {
    match part.get("type").and_then(Value::as_str) {
        Some("text") => match part.get("text") {
            Some(Value::String(text)) => Ok(ContentPart::Text { text: text.clone() }),
            _ => Err(ApiError::invalid(Some(&format!("{at}.text")), "A text part needs a string `text`.")),
        },
        Some("image_url") => {
            let param = format!("{at}.image_url");
            // `{"url": ...}` as OpenAI sends it; a bare string as some clients do.
            let url = match part.get("image_url") {
                Some(Value::String(url)) => url.as_str(),
                Some(Value::Object(o)) => o.get("url").and_then(Value::as_str).unwrap_or_default(),
                _ => "",
            };
            if url.is_empty() {
                return Err(ApiError::invalid(Some(&param), "An image_url part needs `image_url.url`."));
            }
            let source = image_source(url).map_err(|message| ApiError::invalid(Some(&param), message))?;
            images.push(ImagePart { param: param.clone(), source });
            Ok(ContentPart::Image { image: param })
        }
        Some(other) => Err(ApiError::invalid(
            Some(&format!("{at}.type")),
            format!("Unsupported content part type {other:?}: this server takes text and image_url parts."),
        )),
        None => Err(ApiError::invalid(Some(&format!("{at}.type")), "Each content part needs a string `type`.")),
    }
}

/// A data URL's bytes or a local file; remote URLs are refused because the server downloads
/// nothing.
fn image_source(url: &str) -> Result<ImageSource, String> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (header, payload) = rest.split_once(',').ok_or("A data URL needs a comma before its payload.")?;
        let mime =
            header.strip_suffix(";base64").ok_or("Only base64 data URLs are supported (data:image/png;base64,...).")?;
        if !mime.starts_with("image/") {
            return Err(format!("The data URL holds {mime:?}, not an image."));
        }
        return base64::engine::general_purpose::STANDARD
            .decode(payload.trim())
            .map(ImageSource::Data)
            .map_err(|e| format!("The data URL's base64 payload is invalid: {e}."));
    }
    if let Some(path) = url.strip_prefix("file://") {
        // file:///abs/path or file://localhost/abs/path; spaces and the like are %-encoded.
        let path = path.strip_prefix("localhost").unwrap_or(path);
        return percent_decode(path).map(|p| ImageSource::File(PathBuf::from(p)));
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        return Err("Remote image URLs are not fetched: send a data URL or a local file path.".into());
    }
    Ok(ImageSource::File(PathBuf::from(url)))
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bad = || format!("Invalid %-escape in the file URL {text:?}.");
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let hex = tail.get(..2).filter(|h| h.iter().all(u8::is_ascii_hexdigit)).ok_or_else(bad)?;
            let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
            bytes.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            rest = &tail[2..];
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    String::from_utf8(bytes).map_err(|_| bad())
}

/// Why a choice ended, as OpenAI names it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FinishReason {
    /// A stop token or a stop string.
    Stop,
    /// The token limit.
    Length,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
        }
    }
}

/// What every reply and chunk of one completion shares.
pub struct Envelope<'a> {
    pub id: &'a str,
    pub created: u64,
    pub model: &'a str,
}

impl Envelope<'_> {
    fn with(&self, object: &str, choices: Value) -> Value {
        json!({"id": self.id, "object": object, "created": self.created, "model": self.model, "system_fingerprint": null, "choices": choices})
    }

    /// The whole `chat.completion`: one `(text, finish reason)` per choice.
    pub fn completion(&self, choices: &[(String, FinishReason)], usage: Usage) -> Value {
        let choices = choices
            .iter()
            .enumerate()
            .map(|(index, (text, reason))| {
                json!({"index": index, "message": {"role": "assistant", "content": text}, "logprobs": null, "finish_reason": reason.as_str()})
            })
            .collect();
        let mut reply = self.with("chat.completion", Value::Array(choices));
        reply["usage"] = usage.json();
        reply
    }

    /// A `chat.completion.chunk` for choice `index`.
    pub fn chunk(&self, index: usize, delta: Value, finish: Option<FinishReason>) -> Value {
        let choice = json!({"index": index, "delta": delta, "logprobs": null, "finish_reason": finish.map(FinishReason::as_str)});
        self.with("chat.completion.chunk", json!([choice]))
    }

    /// The last chunk of a stream that asked for usage: no choices.
    pub fn usage_chunk(&self, usage: Usage) -> Value {
        let mut chunk = self.with("chat.completion.chunk", json!([]));
        chunk["usage"] = usage.json();
        chunk
    }
}

/// Token counts: the prompt's (image tokens included) and every choice's generated tokens
/// (a stop token included).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
}

impl Usage {
    fn json(self) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        })
    }
}

/// `/v1/models`' entry for the served model.
pub fn model_object(id: &str, created: u64) -> Value {
    json!({"id": id, "object": "model", "created": created, "owned_by": "r1"})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: Value) -> Result<ChatRequest, ApiError> {
        ChatRequest::parse(body.to_string().as_bytes(), 8)
    }

    fn param_of(body: Value) -> Option<String> {
        parse(body).unwrap_err().param
    }

    #[test]
    fn reads_text_and_image_parts_in_order() {
        let png = base64::engine::general_purpose::STANDARD.encode(b"\x89PNG");
        let request = parse(json!({
            "model": "m",
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{png}")}},
                    {"type": "text", "text": "Where next?"},
                    {"type": "image_url", "image_url": {"url": "file:///tmp/a%20b.png"}},
                    {"type": "image_url", "image_url": "frames/c.png"},
                ]},
            ],
            "temperature": 0, "max_completion_tokens": 5, "n": 2, "seed": -1, "stop": "</answer>",
            "stream": true, "stream_options": {"include_usage": true}, "user": "ignored",
        }))
        .unwrap();
        assert_eq!(request.messages[0], Message::text("system", "Be brief."));
        let sources: Vec<_> = request.images.iter().map(|i| i.source.clone()).collect();
        assert_eq!(
            sources,
            [
                ImageSource::Data(b"\x89PNG".to_vec()),
                ImageSource::File("/tmp/a b.png".into()),
                ImageSource::File("frames/c.png".into())
            ]
        );
        assert_eq!(
            request.messages[1].content[0],
            ContentPart::Image { image: "messages[1].content[0].image_url".into() }
        );
        assert_eq!((request.temperature, request.top_p, request.max_tokens, request.n), (0.0, 1.0, Some(5), 2));
        assert_eq!((request.seed, request.stop.as_slice()), (Some(u64::MAX), ["</answer>".to_string()].as_slice()));
        assert!(request.stream && request.include_usage);
    }

    #[test]
    fn defaults_follow_openai() {
        let request = parse(json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}]})).unwrap();
        assert_eq!(
            (request.temperature, request.top_p, request.max_tokens, request.n, request.seed),
            (1.0, 1.0, None, 1, None)
        );
        assert!(!request.stream && request.stop.is_empty());
    }

    #[test]
    fn bad_requests_name_the_field() {
        let user = json!([{"role": "user", "content": "Hi"}]);
        let err = ChatRequest::parse(b"{not json", 8).unwrap_err();
        assert_eq!((err.status, err.kind, err.param), (400, "invalid_request_error", None));
        assert_eq!(param_of(json!({"model": "m"})).as_deref(), Some("messages"));
        assert_eq!(param_of(json!({"messages": user})).as_deref(), Some("model"));
        assert_eq!(param_of(json!({"model": "m", "messages": user, "max_tokens": 0})).as_deref(), Some("max_tokens"));
        assert_eq!(param_of(json!({"model": "m", "messages": user, "temperature": 3})).as_deref(), Some("temperature"));
        assert_eq!(param_of(json!({"model": "m", "messages": user, "top_p": 0})).as_deref(), Some("top_p"));
        assert_eq!(param_of(json!({"model": "m", "messages": user, "n": 9})).as_deref(), Some("n"));
        assert_eq!(param_of(json!({"model": "m", "messages": user, "stop": [1]})).as_deref(), Some("stop"));
        assert_eq!(
            param_of(json!({"model": "m", "messages": user, "tools": [{"type": "function"}]})).as_deref(),
            Some("tools")
        );
        assert_eq!(param_of(json!({"model": "m", "messages": user, "logprobs": true})).as_deref(), Some("logprobs"));
        assert_eq!(
            param_of(json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]})).as_deref(),
            Some("messages[0].role")
        );
        let part = |p: Value| json!({"model": "m", "messages": [{"role": "user", "content": [p]}]});
        assert_eq!(param_of(part(json!({"type": "input_audio"}))).as_deref(), Some("messages[0].content[0].type"));
        let urls = [
            "https://example.com/a.png",
            "data:text/plain;base64,aGk=",
            "data:image/png;base64,***",
            "data:image/png,raw",
            "file:///a%+1.png",
        ];
        for url in urls {
            let err = parse(part(json!({"type": "image_url", "image_url": {"url": url}}))).unwrap_err();
            assert_eq!(err.param.as_deref(), Some("messages[0].content[0].image_url"), "{url}");
        }
    }

    #[test]
    fn error_bodies_have_openai_shape() {
        let body = ApiError::unknown_model("gpt-4o", "tiny").body();
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["param"], "model");
        assert_eq!(body["error"]["code"], "model_not_found");
        assert_eq!(ApiError::no_route("GET", "/v1/nothing").status, 404);
        assert_eq!(ApiError::no_route("GET", "/v1/chat/completions").status, 405);
        assert_eq!(ApiError::invalid(None, "x").body()["error"]["code"], Value::Null);
    }
}
