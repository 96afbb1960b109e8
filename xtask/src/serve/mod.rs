//! `cargo xtask serve`: an OpenAI-compatible HTTP API for a checkpoint, so that robot stacks
//! and r1's own judge client can call a trained planner.
//!
//! * `GET /v1/models`, `GET /v1/models/{id}`: the one served model.
//! * `POST /v1/chat/completions`: see [`api`] for the fields; `"stream": true` answers with
//!   server-sent events.
//!
//! Each connection has a thread that reads its requests, checks them, loads their images and
//! renders the prompt with the checkpoint's chat template; the prompts go to one generation
//! thread ([`batch`]) that owns the model and decodes whatever is queued as one batch. Every
//! failure a request can cause is answered with an OpenAI-style error body and leaves the
//! server serving.

mod api;
mod batch;
mod http;

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use burn::module::Module;
use r1_model::DeviceKind;
use r1_model::checkpoint::{Assets, Prompt};
use r1_model::generate::SamplingConfig;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};

use api::{ApiError, ChatRequest, Envelope, FinishReason, ImageSource};
use batch::{Event, Job, Worker};
use http::{Connection, Request};

/// Request bodies larger than this are refused (a 224x224 PNG is about 100 KiB as a data URL).
const MAX_BODY: usize = 32 << 20;
/// A connection idle this long between requests is closed; a client that stops reading a
/// reply this long is dropped.
const IDLE: Duration = Duration::from_secs(60);
const JSON: &str = "application/json";

#[derive(clap::Args)]
pub struct Args {
    /// Hugging Face Qwen2.5-VL directory, a training run (its newest checkpoint) or a checkpoint.
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// Address to listen on; the default is reachable from this machine only.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// 0 picks a free port; the address is printed on stderr either way.
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// The model's id in the API (`/v1/models`, the requests' `model`); default: --model as given.
    #[arg(long, value_name = "NAME")]
    served_model_name: Option<String>,
    /// Device the model runs on.
    #[arg(long, value_enum, ignore_case = true, default_value_t = DeviceKind::Flex)]
    device: DeviceKind,
    /// Sequences decoded together at most (a request counts as its `n`); also the largest `n`.
    #[arg(long, value_name = "N", default_value_t = 16)]
    max_batch: usize,
    /// How long the generation thread waits for more requests before it starts a batch. With
    /// 0, batches form from the requests that arrived while the previous batch decoded.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    batch_wait_ms: u64,
    /// Reply length in tokens for requests that set no max_tokens (at most what the context leaves).
    #[arg(long, value_name = "N", default_value_t = 256)]
    max_tokens: usize,
    /// Seeds the sampling of requests that give no `seed`.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.max_batch >= 1, "--max-batch must be at least 1");
    anyhow::ensure!(args.max_tokens >= 1, "--max-tokens must be at least 1");
    let (assets, model) = crate::generate::load(&args.model, args.device)?;
    let assets = Arc::new(assets);
    let listener = TcpListener::bind((args.host.as_str(), args.port))
        .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
    let address = listener.local_addr()?;
    let jobs = Worker {
        assets: Arc::clone(&assets),
        model: model.valid(),
        max_rows: args.max_batch,
        wait: Duration::from_millis(args.batch_wait_ms),
        rng: StdRng::seed_from_u64(args.seed),
    }
    .spawn()
    .context("cannot start the generation thread")?;
    let server = Arc::new(Server {
        model_id: args.served_model_name.unwrap_or_else(|| args.model.display().to_string()),
        context: assets.config.text.max_position_embeddings,
        assets,
        created: unix_time(),
        jobs,
        max_n: args.max_batch,
        default_max_tokens: args.max_tokens,
        completions: AtomicU64::new(0),
    });
    // The test harness and scripts read the address from this line (with --port 0).
    eprintln!("listening on http://{address}/v1 (model {:?}, {} tokens of context)", server.model_id, server.context);
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                let server = Arc::clone(&server);
                let spawned = std::thread::Builder::new().name("connection".into()).spawn(move || server.serve(stream));
                if let Err(e) = spawned {
                    eprintln!("cannot start a connection thread: {e}");
                }
            }
            Err(e) => eprintln!("cannot accept a connection: {e}"),
        }
    }
    Ok(())
}

struct Server {
    assets: Arc<Assets>,
    model_id: String,
    /// Prompt plus reply tokens at most (`max_position_embeddings`).
    context: usize,
    /// When the server started, as the model's `created`.
    created: u64,
    jobs: Sender<Job>,
    max_n: usize,
    default_max_tokens: usize,
    /// Completions answered so far, for their ids.
    completions: AtomicU64,
}

impl Server {
    /// Answers the requests of one connection until the client closes it.
    fn serve(&self, stream: TcpStream) {
        let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_else(|_| "?".into());
        // Without timeouts a silent client would hold its thread forever.
        if stream.set_read_timeout(Some(IDLE)).and_then(|()| stream.set_write_timeout(Some(IDLE))).is_err() {
            return;
        }
        let mut connection = Connection::new(stream);
        loop {
            let request = match connection.read_request(MAX_BODY) {
                Ok(Some(request)) => request,
                Ok(None) => return,
                Err(e) => {
                    if let Some(status) = e.status() {
                        let error = ApiError { status, ..ApiError::invalid(None, e.to_string()) };
                        let _ = connection.respond(status, JSON, error.body().to_string().as_bytes(), true);
                        eprintln!("{peer} {status} {e}");
                    }
                    return;
                }
            };
            let start = Instant::now();
            let outcome = self.answer(&mut connection, &request);
            let took = start.elapsed().as_secs_f64();
            match outcome {
                Ok(Answered { status, keep_open }) => {
                    eprintln!("{peer} {} {} {status} {took:.2} s", request.method, request.path);
                    if request.close || !keep_open {
                        return;
                    }
                }
                Err(e) => {
                    eprintln!("{peer} {} {} dropped after {took:.2} s: {e}", request.method, request.path);
                    return;
                }
            }
        }
    }

    fn answer(&self, connection: &mut Connection, request: &Request) -> std::io::Result<Answered> {
        let result = match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/v1/models") => {
                Ok(json!({"object": "list", "data": [api::model_object(&self.model_id, self.created)]}))
            }
            ("GET", path) if path.starts_with("/v1/models/") => {
                let id = &path["/v1/models/".len()..];
                if id == self.model_id {
                    Ok(api::model_object(&self.model_id, self.created))
                } else {
                    Err(ApiError::unknown_model(id, &self.model_id))
                }
            }
            ("POST", "/v1/chat/completions") => match self.submit(&request.body) {
                Ok((chat, events)) if chat.stream => return self.stream(connection, &chat, events),
                Ok((chat, events)) => self.collect(&chat, events),
                Err(e) => Err(e),
            },
            (method, path) => Err(ApiError::no_route(method, path)),
        };
        let (status, body) = match result {
            Ok(body) => (200, body),
            Err(e) => (e.status, e.body()),
        };
        connection.respond(status, JSON, body.to_string().as_bytes(), false)?;
        Ok(Answered { status, keep_open: true })
    }

    /// Checks a chat request, builds its prompt and queues it; the events of its generation
    /// come on the returned channel.
    fn submit(&self, body: &[u8]) -> Result<(Chat, Receiver<Event>), ApiError> {
        let request = ChatRequest::parse(body, self.max_n)?;
        if request.model != self.model_id {
            return Err(ApiError::unknown_model(&request.model, &self.model_id));
        }
        let prompt = self.prompt(&request)?;
        let room = self.context.saturating_sub(prompt.ids.len());
        let max_tokens = request.max_tokens.unwrap_or(self.default_max_tokens.min(room));
        if max_tokens == 0 || max_tokens > room {
            return Err(ApiError {
                code: Some("context_length_exceeded"),
                ..ApiError::invalid(
                    Some("messages"),
                    format!(
                        "This model's maximum context length is {} tokens. However, you requested {} tokens ({} in the messages, {} in the completion).",
                        self.context,
                        prompt.ids.len() + max_tokens.max(1),
                        prompt.ids.len(),
                        max_tokens.max(1)
                    ),
                )
            });
        }
        let sampling = SamplingConfig {
            max_new_tokens: max_tokens,
            temperature: request.temperature,
            top_p: request.top_p,
            top_k: 0,
        };
        sampling.validate().map_err(|e| ApiError::invalid(None, e.to_string()))?;
        let chat = Chat {
            id: format!("chatcmpl-{:x}-{}", self.created, self.completions.fetch_add(1, Ordering::Relaxed)),
            created: unix_time(),
            n: request.n,
            stream: request.stream,
            include_usage: request.include_usage,
        };
        let (events, receiver) = mpsc::channel();
        let job = Job { prompt, n: request.n, sampling, seed: request.seed, stop: request.stop, events };
        self.jobs.send(job).map_err(|_| ApiError::server("the generation thread has stopped"))?;
        Ok((chat, receiver))
    }

    /// The request's images processed as the checkpoint's processor does, and the prompt
    /// rendered with its chat template.
    fn prompt(&self, request: &ChatRequest) -> Result<Prompt, ApiError> {
        let processor = &self.assets.processor;
        let images = request
            .images
            .iter()
            .map(|image| {
                match &image.source {
                    ImageSource::Data(bytes) => processor.process_encoded(bytes, &image.param),
                    ImageSource::File(path) => processor.process_file(path),
                }
                .map_err(|e| ApiError::invalid(Some(&image.param), e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.assets
            .encode_prompt_with_images(&request.messages, images)
            .map_err(|e| ApiError::invalid(Some("messages"), e.to_string()))
    }

    /// Waits for the whole generation and builds the `chat.completion`.
    fn collect(&self, chat: &Chat, events: Receiver<Event>) -> Result<Value, ApiError> {
        let mut texts = vec![String::new(); chat.n];
        let mut reasons = vec![FinishReason::Length; chat.n];
        loop {
            match events.recv() {
                Ok(Event::Text { index, text }) => texts[index].push_str(&text),
                Ok(Event::Finish { index, reason }) => reasons[index] = reason,
                Ok(Event::Done(usage)) => {
                    let choices: Vec<(String, FinishReason)> = texts.into_iter().zip(reasons).collect();
                    return Ok(chat.envelope(&self.model_id).completion(&choices, usage));
                }
                Ok(Event::Failed(e)) => return Err(e),
                Err(_) => return Err(ApiError::server("the generation thread stopped before answering")),
            }
        }
    }

    /// Sends the generation as `chat.completion.chunk` events as it happens, then `[DONE]`.
    /// The status is sent first, so a later failure arrives as an `{"error": ...}` event.
    fn stream(&self, connection: &mut Connection, chat: &Chat, events: Receiver<Event>) -> std::io::Result<Answered> {
        let envelope = chat.envelope(&self.model_id);
        connection.start_events()?;
        for index in 0..chat.n {
            connection.event(&envelope.chunk(index, json!({"role": "assistant", "content": ""}), None).to_string())?;
        }
        loop {
            let chunk = match events.recv() {
                Ok(Event::Text { index, text }) => envelope.chunk(index, json!({"content": text}), None),
                Ok(Event::Finish { index, reason }) => envelope.chunk(index, json!({}), Some(reason)),
                Ok(Event::Done(usage)) => {
                    if chat.include_usage {
                        connection.event(&envelope.usage_chunk(usage).to_string())?;
                    }
                    break;
                }
                Ok(Event::Failed(e)) => e.body(),
                Err(_) => ApiError::server("the generation thread stopped before answering").body(),
            };
            let failed = chunk.get("error").is_some();
            connection.event(&chunk.to_string())?;
            if failed {
                return Ok(Answered { status: 200, keep_open: false });
            }
        }
        connection.event("[DONE]")?;
        Ok(Answered { status: 200, keep_open: false })
    }
}

/// How a request was answered.
struct Answered {
    status: u16,
    /// Whether the connection can carry another request (not after an event stream).
    keep_open: bool,
}

/// A queued chat completion.
struct Chat {
    id: String,
    created: u64,
    n: usize,
    stream: bool,
    include_usage: bool,
}

impl Chat {
    fn envelope<'a>(&'a self, model: &'a str) -> Envelope<'a> {
        Envelope { id: &self.id, created: self.created, model }
    }
}

fn unix_time() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
