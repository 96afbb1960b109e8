//! The optional LLM judge: any OpenAI-compatible chat-completions endpoint scores an answer
//! against the reference 0 to 3 on the paper's rubric.
//!
//! Deterministic by construction where the endpoint allows it: temperature 0, the same
//! prompt, and `samples` independent requests averaged (the paper sampled its judge once at
//! temperature 1). The reply must contain `Score: N` with `N` in 0..=3; the last such
//! occurrence counts. Any failure (endpoint unreachable, HTTP error, a reply without a
//! score) is an error for that question: the caller records it and leaves the question out of
//! the judge's averages; it is never scored as 0.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Judge failures; each names the endpoint or quotes the reply.
#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    #[error("judge configuration: {0}")]
    Config(String),
    #[error("judge endpoint {url} is unreachable: {message}")]
    Unreachable { url: String, message: String },
    #[error("judge endpoint {url} answered HTTP {status}: {body}")]
    Status { url: String, status: u16, body: String },
    #[error("judge endpoint {url} sent a malformed chat-completions response: {message}")]
    Malformed { url: String, message: String },
    #[error("judge reply has no \"Score: N\" with N in 0..=3: {reply:?}")]
    NoScore { reply: String },
}

/// Where and how to reach the judge.
#[derive(Clone, Debug, PartialEq)]
pub struct JudgeConfig {
    /// Base URL of the API, e.g. `https://api.openai.com/v1`; requests go to
    /// `{base_url}/chat/completions`.
    pub base_url: String,
    pub model: String,
    /// Sent as `Authorization: Bearer <key>` when set (local servers often need none).
    pub api_key: Option<String>,
    /// Requests per answer, averaged.
    pub samples: u32,
    /// Per-request time limit.
    pub timeout: Duration,
}

impl JudgeConfig {
    /// Builds the configuration from explicit values (command-line flags) falling back to the
    /// environment: `R1_JUDGE_BASE_URL`, `R1_JUDGE_MODEL`, `R1_JUDGE_API_KEY`, then
    /// `OPENAI_BASE_URL`, `OPENAI_MODEL`, `OPENAI_API_KEY`. `env` looks a variable up (pass
    /// `|k| std::env::var(k).ok()`). Returns `Ok(None)` when no base URL is given anywhere:
    /// the judge is optional.
    pub fn resolve(
        base_url: Option<String>,
        model: Option<String>,
        api_key: Option<String>,
        samples: u32,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, JudgeError> {
        let pick = |flag: Option<String>, name: &str| {
            flag.or_else(|| env(&format!("R1_JUDGE_{name}")))
                .or_else(|| env(&format!("OPENAI_{name}")))
                .filter(|v| !v.is_empty())
        };
        let Some(base_url) = pick(base_url, "BASE_URL") else { return Ok(None) };
        let model = pick(model, "MODEL").ok_or_else(|| {
            JudgeError::Config(format!(
                "a judge endpoint ({base_url}) is set but no model: pass --judge-model or set R1_JUDGE_MODEL"
            ))
        })?;
        if samples == 0 {
            return Err(JudgeError::Config("--judge-samples must be at least 1".into()));
        }
        Ok(Some(Self {
            base_url: base_url.trim_end_matches('/').to_string(),
            model,
            api_key: pick(api_key, "API_KEY"),
            samples,
            timeout: Duration::from_secs(120),
        }))
    }

    fn url(&self) -> String {
        format!("{}/chat/completions", self.base_url)
    }
}

/// The rubric the judge is given, after the paper's (scores 0 to 3, lenient on paraphrase).
pub const RUBRIC: &str = "You grade answers to questions about a robot manipulation scene seen \
through the robot's front camera. Compare the model's answer with the reference answer and \
score it from 0 to 3:\n\
0 - the answer contradicts the reference, is unrelated, or is empty;\n\
1 - the answer partially matches the reference but has significant differences;\n\
2 - the answer mostly matches the reference, with minor differences;\n\
3 - the answer is equivalent to the reference, or more detailed while consistent with it.\n\
Judge the meaning, not the wording: be lenient with paraphrases. Directions are as seen from \
the camera. Reply with one short sentence of justification, then a last line of the form \
\"Score: N\".";

/// The user turn the judge sees.
pub fn judge_prompt(question: &str, reference: &str, answer: &str) -> String {
    format!("Question:\n{question}\n\nReference answer:\n{reference}\n\nModel answer:\n{answer}")
}

/// Reads the score from a judge reply: the last `score` (any case), optionally followed by
/// `*`/spaces, then `:` and a digit 0..=3 (markdown bold such as `**Score:** 2` is accepted).
pub fn parse_score(reply: &str) -> Result<u8, JudgeError> {
    let lower = reply.to_lowercase();
    let found = lower.match_indices("score").filter_map(|(i, _)| {
        let rest = lower[i + "score".len()..].trim_start_matches(['*', ' ']);
        let rest = rest.strip_prefix(':')?.trim_start_matches(['*', ' ']);
        let digit = rest.chars().next()?.to_digit(10)?;
        // "Score: 10" or "Score: 2.5" are not a 0..=3 score.
        let after = rest.chars().nth(1);
        (digit <= 3
            && !after.is_some_and(|c| {
                c.is_ascii_digit() || c == '.' && rest.chars().nth(2).is_some_and(|d| d.is_ascii_digit())
            }))
        .then_some(digit as u8)
    });
    found.last().ok_or_else(|| JudgeError::NoScore { reply: truncate(reply, 300) })
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_string() } else { s.chars().take(n).collect::<String>() + "…" }
}

/// One judged answer: the per-sample scores and their mean.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JudgeScore {
    pub samples: Vec<u8>,
    pub mean: f64,
}

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: [ChatMessage<'a>; 2],
    temperature: f64,
}

#[derive(Serialize)]
struct ChatMessage<'a> {
    role: &'a str,
    content: &'a str,
}

#[derive(Deserialize)]
struct ChatResponse {
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    message: ReplyMessage,
}

#[derive(Deserialize)]
struct ReplyMessage {
    content: Option<String>,
}

/// A chat-completions client holding one connection pool.
pub struct Judge {
    config: JudgeConfig,
    agent: ureq::Agent,
}

impl Judge {
    pub fn new(config: JudgeConfig) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            // Non-2xx answers are read and reported with their body, not as a bare status.
            .http_status_as_error(false)
            .build()
            .into();
        Self { config, agent }
    }

    pub fn config(&self) -> &JudgeConfig {
        &self.config
    }

    /// One request; returns the reply's text.
    fn complete(&self, user: &str) -> Result<String, JudgeError> {
        let url = self.config.url();
        let body = serde_json::to_string(&ChatRequest {
            model: &self.config.model,
            messages: [ChatMessage { role: "system", content: RUBRIC }, ChatMessage { role: "user", content: user }],
            temperature: 0.0,
        })
        .expect("a request of strings serialises");
        let mut request = self.agent.post(&url).header("Content-Type", "application/json");
        if let Some(key) = &self.config.api_key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        let mut response =
            request.send(body).map_err(|e| JudgeError::Unreachable { url: url.clone(), message: e.to_string() })?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| JudgeError::Unreachable { url: url.clone(), message: format!("reading the response: {e}") })?;
        if !(200..300).contains(&status) {
            return Err(JudgeError::Status { url, status, body: truncate(&text, 300) });
        }
        let parsed: ChatResponse = serde_json::from_str(&text).map_err(|e| JudgeError::Malformed {
            url: url.clone(),
            message: format!("{e}: {}", truncate(&text, 200)),
        })?;
        parsed
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.message.content)
            .ok_or_else(|| JudgeError::Malformed { url, message: "no choices[0].message.content".into() })
    }

    /// Scores one answer with `samples` requests; the first failing request fails the whole
    /// answer (a partial average would be biased toward whatever the endpoint managed).
    pub fn score(&self, question: &str, reference: &str, answer: &str) -> Result<JudgeScore, JudgeError> {
        let prompt = judge_prompt(question, reference, answer);
        let samples = (0..self.config.samples)
            .map(|_| self.complete(&prompt).and_then(|reply| parse_score(&reply)))
            .collect::<Result<Vec<u8>, _>>()?;
        let mean = samples.iter().map(|&s| f64::from(s)).sum::<f64>() / samples.len() as f64;
        Ok(JudgeScore { samples, mean })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_http::{completion, serve};
    use std::net::TcpListener;

    fn config(base_url: String, samples: u32) -> JudgeConfig {
        JudgeConfig {
            base_url,
            model: "judge-model".into(),
            api_key: Some("sk-test".into()),
            samples,
            timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn parses_scores() {
        assert_eq!(parse_score("The answer matches.\nScore: 3").unwrap(), 3);
        assert_eq!(parse_score("**Score:** 2").unwrap(), 2);
        assert_eq!(parse_score("score:1 ... final SCORE: 0").unwrap(), 0);
        assert!(matches!(parse_score("I would give it a 2."), Err(JudgeError::NoScore { .. })));
        assert!(parse_score("Score: 7").is_err());
        assert!(parse_score("Score: 10").is_err());
        assert!(parse_score("Score: 2.5").is_err());
        assert_eq!(parse_score("Score: 2.").unwrap(), 2);
    }

    #[test]
    fn averages_samples_and_sends_the_rubric_at_temperature_zero() {
        let (url, requests) = serve(|n| (200, completion(if n % 2 == 0 { "Close. Score: 3" } else { "Score: 2" })));
        let judge = Judge::new(config(url, 2));
        let score = judge.score("Where next?", "move down", "Move down").unwrap();
        assert_eq!(score, JudgeScore { samples: vec![3, 2], mean: 2.5 });
        let (head, body) = requests.recv().unwrap();
        assert!(head.starts_with("POST /v1/chat/completions "), "{head}");
        assert!(head.to_lowercase().contains("authorization: bearer sk-test"), "{head}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["temperature"], 0.0);
        assert_eq!(body["model"], "judge-model");
        assert_eq!(body["messages"][0]["content"], RUBRIC);
        assert!(body["messages"][1]["content"].as_str().unwrap().contains("Reference answer:\nmove down"));
    }

    #[test]
    fn malformed_replies_are_errors() {
        let (url, _r) = serve(|n| match n {
            0 => (200, completion("I think it is fine.")),
            1 => (200, "not json".into()),
            2 => (200, r#"{"choices": []}"#.into()),
            _ => (500, r#"{"error": "overloaded"}"#.into()),
        });
        let judge = Judge::new(config(url, 1));
        assert!(matches!(judge.score("q", "r", "a"), Err(JudgeError::NoScore { .. })));
        assert!(matches!(judge.score("q", "r", "a"), Err(JudgeError::Malformed { .. })));
        assert!(matches!(judge.score("q", "r", "a"), Err(JudgeError::Malformed { .. })));
        let err = judge.score("q", "r", "a").unwrap_err();
        assert!(matches!(err, JudgeError::Status { status: 500, .. }), "{err}");
        assert!(err.to_string().contains("overloaded"));
    }

    #[test]
    fn an_unreachable_endpoint_is_a_clear_error() {
        // A port that was just free: nothing listens on it.
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let judge = Judge::new(config(format!("http://127.0.0.1:{port}/v1"), 1));
        let err = judge.score("q", "r", "a").unwrap_err();
        assert!(matches!(err, JudgeError::Unreachable { .. }), "{err}");
        assert!(err.to_string().contains(&format!("127.0.0.1:{port}")));
    }

    #[test]
    fn configuration_comes_from_flags_then_environment() {
        let env = |k: &str| match k {
            "R1_JUDGE_MODEL" => Some("gpt-4o".to_string()),
            "OPENAI_BASE_URL" => Some("https://api.example/v1/".to_string()),
            "OPENAI_API_KEY" => Some("sk-env".to_string()),
            _ => None,
        };
        let c = JudgeConfig::resolve(None, None, None, 3, env).unwrap().unwrap();
        assert_eq!(
            (c.base_url.as_str(), c.model.as_str(), c.api_key.as_deref()),
            ("https://api.example/v1", "gpt-4o", Some("sk-env"))
        );
        let c = JudgeConfig::resolve(Some("http://x".into()), Some("m".into()), None, 1, env).unwrap().unwrap();
        assert_eq!((c.base_url.as_str(), c.model.as_str()), ("http://x", "m"));
        assert_eq!(JudgeConfig::resolve(None, None, None, 1, |_| None).unwrap(), None);
        assert!(JudgeConfig::resolve(Some("http://x".into()), None, None, 1, |_| None).is_err());
        assert!(JudgeConfig::resolve(Some("http://x".into()), Some("m".into()), None, 0, |_| None).is_err());
    }
}
