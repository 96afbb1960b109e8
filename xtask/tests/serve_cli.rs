//! `cargo xtask serve` on a tiny model created here, spoken to over 127.0.0.1: r1-bench's own
//! judge client, OpenAI's reply and stream shapes, concurrent requests sharing one batch, and
//! bad requests answered with OpenAI-style errors while the server keeps serving.
//! `bench_serve` (ignored) prints the README's throughput table:
//!
//! `cargo test --workspace --release --test serve_cli -- --ignored --nocapture bench_serve`

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use common::repo;
use r1_bench::judge::{Judge, JudgeConfig, JudgeError, RUBRIC, judge_prompt};
use r1_data::QaSample;
use r1_data::dataset::{Split, read_split};
use serde_json::{Value, json};

/// The served model's id.
const MODEL: &str = "tiny";

/// A tiny model (as `cargo xtask train` creates it) in `dir`, and dataset questions.
fn tiny_model(dir: &Path) -> (PathBuf, Vec<QaSample>) {
    let samples = read_split(&repo().join("datasets/default"), Split::Train)
        .expect("the default dataset is part of the repository");
    let model = dir.join("tiny");
    r1_model::tiny::create_tiny(
        &model,
        &r1_data::qa::dataset_texts(&samples),
        0,
        &r1_model::parse_device("flex").unwrap(),
    )
    .unwrap();
    (model, samples)
}

/// The image file of a dataset question.
fn image_of(sample: &QaSample) -> PathBuf {
    let image = sample.messages.iter().flat_map(|m| m.images()).next().expect("a question shows an image");
    repo().join("datasets/default").join(image)
}

/// A running `xtask serve`, killed when dropped (also when a test fails).
struct Server {
    child: Child,
    /// `127.0.0.1:PORT`.
    address: String,
    /// Its stderr lines so far.
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(model: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["serve", "--port", "0", "--served-model-name", MODEL])
            .arg("--model")
            .arg(model)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the xtask binary runs");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (lines, receiver) = mpsc::channel();
        // Drained to the end, so that the server never blocks on a full pipe.
        std::thread::spawn({
            let log = Arc::clone(&log);
            move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    log.lock().unwrap().push(line.clone());
                    let _ = lines.send(line);
                }
            }
        });
        let mut server = Self { child, address: String::new(), log };
        while let Ok(line) = receiver.recv_timeout(Duration::from_secs(120)) {
            if let Some(rest) = line.strip_prefix("listening on http://") {
                server.address = rest.split('/').next().unwrap().to_string();
                return server;
            }
        }
        panic!("the server printed no address: {}", server.log());
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Whether the log shows `needle` within a few seconds: the server's stderr is read by
    /// another thread, which may not have caught up with a reply that already arrived.
    fn logged(&self, needle: &str) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !self.log().contains(needle) {
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// One request on a new connection: the status and the body.
    fn request(&self, raw_head: &str, body: &[u8]) -> (u16, String) {
        let mut stream = TcpStream::connect(&self.address).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        stream.write_all(raw_head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no HTTP response: {response:?}"));
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{head}"));
        (status, body.to_string())
    }

    fn send(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.address,
            body.len()
        );
        self.request(&head, body)
    }

    fn get(&self, path: &str) -> (u16, Value) {
        let (status, body) = self.send("GET", path, b"");
        (status, serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}")))
    }

    /// `POST /v1/chat/completions` of `request`: the status and the JSON body.
    fn chat(&self, request: &Value) -> (u16, Value) {
        let (status, body) = self.send("POST", "/v1/chat/completions", request.to_string().as_bytes());
        (status, serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}")))
    }

    /// A streamed chat: the events' data, `[DONE]` included.
    fn chat_stream(&self, request: &Value) -> Vec<String> {
        let (status, body) = self.send("POST", "/v1/chat/completions", request.to_string().as_bytes());
        assert_eq!(status, 200, "{body}");
        let events: Vec<String> = body
            .split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| e.strip_prefix("data: ").unwrap_or_else(|| panic!("{e:?}")).to_string())
            .collect();
        events
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A user turn: the image (given as `url`) and the question's text.
fn question(url: &str, text: &str, extra: Value) -> Value {
    let mut request = json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url}},
            {"type": "text", "text": text},
        ]}],
    });
    request.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    request
}

fn data_url(path: &Path) -> String {
    format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(std::fs::read(path).unwrap()))
}

fn contents(reply: &Value) -> Vec<String> {
    reply["choices"].as_array().unwrap().iter().map(|c| c["message"]["content"].as_str().unwrap().to_string()).collect()
}

/// The shape OpenAI's clients parse, for a reply of `n` choices of at most `max_tokens` each.
fn assert_completion(reply: &Value, n: usize, max_tokens: u64) {
    assert_eq!(reply["object"], "chat.completion", "{reply}");
    assert_eq!(reply["model"], MODEL);
    assert!(reply["id"].as_str().unwrap().starts_with("chatcmpl-") && reply["created"].as_u64().unwrap() > 0);
    let choices = reply["choices"].as_array().unwrap();
    assert_eq!(choices.len(), n, "{reply}");
    for (i, choice) in choices.iter().enumerate() {
        assert_eq!(choice["index"], i);
        assert_eq!(choice["message"]["role"], "assistant");
        assert!(choice["message"]["content"].is_string());
        assert!(["stop", "length"].contains(&choice["finish_reason"].as_str().unwrap()), "{choice}");
    }
    let usage = &reply["usage"];
    let (prompt, completion) = (usage["prompt_tokens"].as_u64().unwrap(), usage["completion_tokens"].as_u64().unwrap());
    assert_eq!(usage["total_tokens"].as_u64().unwrap(), prompt + completion);
    assert!(prompt > 16, "the prompt holds the image's 16 tokens and the text: {usage}");
    assert!(completion >= n as u64 && completion <= n as u64 * max_tokens, "{usage}");
}

#[test]
fn serves_the_judge_client_and_openai_shapes() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, samples) = tiny_model(tmp.path());
    let server = Server::start(&model, &["--max-tokens", "8"]);

    let (status, models) = server.get("/v1/models");
    assert_eq!(status, 200);
    assert_eq!((models["object"].as_str(), models["data"][0]["id"].as_str()), (Some("list"), Some(MODEL)), "{models}");
    assert_eq!(server.get(&format!("/v1/models/{MODEL}")).1["object"], "model");

    // r1-bench's judge client, as `cargo xtask eval --judge-url` runs it, against the server.
    let judge = Judge::new(JudgeConfig {
        base_url: format!("http://{}/v1", server.address),
        model: MODEL.into(),
        api_key: Some("sk-local".into()),
        samples: 1,
        timeout: Duration::from_secs(120),
    });
    let reply = match judge.score("Where does the gripper go next?", "move down", "It moves down.") {
        // An untrained model hardly ever writes "Score: N"; the exchange is what is tested.
        Ok(_) => None,
        Err(JudgeError::NoScore { reply }) => Some(reply),
        Err(e) => panic!("the judge client could not use the server: {e}\n{}", server.log()),
    };
    // Greedy (the judge asks for temperature 0): the same request gives the same reply.
    let same = json!({"model": MODEL, "temperature": 0, "messages": [
        {"role": "system", "content": RUBRIC},
        {"role": "user", "content": judge_prompt("Where does the gripper go next?", "move down", "It moves down.")},
    ]});
    let (status, direct) = server.chat(&same);
    assert_eq!(status, 200, "{direct}");
    assert_completion(&direct, 1, 8);
    if let Some(reply) = reply {
        assert_eq!(contents(&direct), [reply]);
    }

    // The image as a data URL, a path and a file:// URL: the same prompt, the same reply.
    let image = image_of(&samples[0]);
    let text = samples[0].messages.last().unwrap().joined_text();
    let greedy = json!({"temperature": 0, "n": 2, "max_tokens": 5});
    let (status, by_data) = server.chat(&question(&data_url(&image), &text, greedy.clone()));
    assert_eq!(status, 200, "{by_data}");
    assert_completion(&by_data, 2, 5);
    let texts = contents(&by_data);
    assert_eq!(texts[0], texts[1], "greedy choices agree");
    for url in [image.display().to_string(), format!("file://{}", image.display())] {
        let (status, reply) = server.chat(&question(&url, &text, greedy.clone()));
        assert_eq!(status, 200, "{reply}");
        assert_eq!(contents(&reply), texts, "{url}");
        assert_eq!(reply["usage"], by_data["usage"]);
    }

    // Streaming: role first, the same text in pieces per choice, finish reasons, usage, [DONE].
    let streamed =
        json!({"temperature": 0, "n": 2, "max_tokens": 5, "stream": true, "stream_options": {"include_usage": true}});
    let events = server.chat_stream(&question(&data_url(&image), &text, streamed));
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    let mut pieces = vec![String::new(); 2];
    let mut finish = vec![Value::Null; 2];
    for (k, chunk) in chunks.iter().enumerate() {
        assert_eq!(chunk["object"], "chat.completion.chunk", "{chunk}");
        assert_eq!(chunk["id"], chunks[0]["id"]);
        let Some(choice) = chunk["choices"].as_array().unwrap().first() else {
            assert_eq!(k, chunks.len() - 1, "only the last chunk has no choice");
            assert_eq!(chunk["usage"], by_data["usage"]);
            continue;
        };
        let index = choice["index"].as_u64().unwrap() as usize;
        if k < 2 {
            assert_eq!(choice["delta"]["role"], "assistant", "each choice opens with its role");
        }
        assert!(finish[index].is_null(), "nothing after a choice's finish: {chunk}");
        pieces[index].push_str(choice["delta"]["content"].as_str().unwrap_or_default());
        finish[index] = choice["finish_reason"].clone();
    }
    assert_eq!(pieces, texts);
    let reasons: Vec<&Value> = by_data["choices"].as_array().unwrap().iter().map(|c| &c["finish_reason"]).collect();
    assert_eq!(finish.iter().collect::<Vec<_>>(), reasons);

    // A seed makes sampling reproducible, whatever runs beside it.
    let seeded = json!({"temperature": 1.0, "top_p": 0.9, "seed": 7, "n": 2, "max_tokens": 6});
    let (_, first) = server.chat(&question(&data_url(&image), &text, seeded.clone()));
    let (_, again) = server.chat(&question(&data_url(&image), &text, seeded));
    assert_completion(&first, 2, 6);
    assert_eq!(contents(&first), contents(&again));

    // A stop string ends the reply before it.
    let (_, long) = server.chat(&question(&data_url(&image), &text, json!({"temperature": 0, "max_tokens": 8})));
    let full = contents(&long).remove(0);
    if let Some((i, c)) = full.char_indices().nth(1) {
        let stop = full[i..i + c.len_utf8()].to_string();
        let (_, cut) = server.chat(&question(
            &data_url(&image),
            &text,
            json!({"temperature": 0, "max_tokens": 8, "stop": [stop]}),
        ));
        assert_eq!(contents(&cut), [&full[..full.find(&stop).unwrap()]]);
        assert_eq!(cut["choices"][0]["finish_reason"], "stop");
    }
}

#[test]
fn concurrent_requests_share_a_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, samples) = tiny_model(tmp.path());
    // The generation thread waits long enough for all four to queue, even on a loaded machine.
    let server = Server::start(&model, &["--batch-wait-ms", "2000", "--max-batch", "8"]);
    let requests: Vec<Value> = (0..4)
        .map(|i| {
            let sample = &samples[i * 7];
            let text = sample.messages.last().unwrap().joined_text();
            question(&data_url(&image_of(sample)), &text, json!({"temperature": 0, "max_tokens": 2 + i}))
        })
        .collect();
    let batched: Vec<(u16, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = requests.iter().map(|r| s.spawn(|| server.chat(r))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(server.logged("batch of 4 requests (4 sequences)"), "{}", server.log());
    for (i, (request, (status, reply))) in requests.iter().zip(&batched).enumerate() {
        assert_eq!(*status, 200, "{reply}");
        assert_completion(reply, 1, 2 + i as u64);
        // Each row ends at its own request's limit, and batching changes no reply.
        let (_, alone) = server.chat(request);
        assert_eq!(contents(reply), contents(&alone), "request {i}");
        assert_eq!(reply["usage"], alone["usage"], "request {i}");
    }
}

#[test]
fn bad_requests_get_openai_errors_and_the_server_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, samples) = tiny_model(tmp.path());
    let mut server = Server::start(&model, &["--max-tokens", "4"]);
    let image = image_of(&samples[0]);
    let not_an_image = tmp.path().join("notes.png");
    std::fs::write(&not_an_image, "not a picture").unwrap();
    let missing = tmp.path().join("missing.png");
    let ok = question(&data_url(&image), "Where next?", json!({}));
    let with = |extra: Value| {
        let mut request = ok.clone();
        request.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        request
    };
    let image_param = Some("messages[0].content[0].image_url");
    // What is sent, the status expected, and the error's `param` and `code`.
    type Case<'a> = (&'a str, Vec<u8>, u16, Option<&'a str>, Option<&'a str>);
    let cases: Vec<Case> = vec![
        ("invalid JSON", b"{\"model\": ".to_vec(), 400, None, None),
        ("no messages", json!({"model": MODEL}).to_string().into_bytes(), 400, Some("messages"), None),
        (
            "missing image file",
            question(missing.to_str().unwrap(), "x", json!({})).to_string().into_bytes(),
            400,
            image_param,
            None,
        ),
        (
            "a file that is not an image",
            question(not_an_image.to_str().unwrap(), "x", json!({})).to_string().into_bytes(),
            400,
            image_param,
            None,
        ),
        (
            "a data URL that is not an image",
            question("data:image/png;base64,aGVsbG8=", "x", json!({})).to_string().into_bytes(),
            400,
            image_param,
            None,
        ),
        (
            "a remote URL",
            question("https://example.com/a.png", "x", json!({})).to_string().into_bytes(),
            400,
            image_param,
            None,
        ),
        ("max_tokens 0", with(json!({"max_tokens": 0})).to_string().into_bytes(), 400, Some("max_tokens"), None),
        (
            "max_tokens past the context",
            with(json!({"max_tokens": 1_000_000_000u64})).to_string().into_bytes(),
            400,
            Some("messages"),
            Some("context_length_exceeded"),
        ),
        ("n above the batch", with(json!({"n": 100})).to_string().into_bytes(), 400, Some("n"), None),
        (
            "tools",
            with(json!({"tools": [{"type": "function", "function": {"name": "f"}}]})).to_string().into_bytes(),
            400,
            Some("tools"),
            None,
        ),
        (
            "a tool turn",
            json!({"model": MODEL, "messages": [{"role": "tool", "content": "42"}]}).to_string().into_bytes(),
            400,
            Some("messages[0].role"),
            None,
        ),
        (
            "an unknown model",
            with(json!({"model": "gpt-4o"})).to_string().into_bytes(),
            404,
            Some("model"),
            Some("model_not_found"),
        ),
        (
            "a stream with a bad image",
            question(missing.to_str().unwrap(), "x", json!({"stream": true})).to_string().into_bytes(),
            400,
            image_param,
            None,
        ),
    ];
    for (what, body, status, param, code) in cases {
        let (got, text) = server.send("POST", "/v1/chat/completions", &body);
        let reply: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: {e}: {text}"));
        assert_eq!(got, status, "{what}: {reply}");
        let error = &reply["error"];
        assert_eq!(error["type"], "invalid_request_error", "{what}: {reply}");
        assert!(!error["message"].as_str().unwrap().is_empty(), "{what}");
        assert_eq!(error["param"].as_str(), param, "{what}: {reply}");
        assert_eq!(error["code"].as_str(), code, "{what}: {reply}");
    }
    for (method, path, status) in
        [("GET", "/v1/nothing", 404), ("POST", "/v1/completions", 404), ("GET", "/v1/chat/completions", 405)]
    {
        let (got, text) = server.send(method, path, b"");
        assert_eq!(got, status, "{method} {path}: {text}");
        let reply: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(reply["error"]["type"], "invalid_request_error");
        assert!(reply["error"]["message"].as_str().unwrap().contains(path));
    }
    // Not HTTP at all, and a connection closed halfway through a request.
    assert_eq!(server.request("GARBAGE\r\n\r\n", b"").0, 400);
    drop(
        TcpStream::connect(&server.address)
            .unwrap()
            .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 100\r\n\r\n{"),
    );

    // Still serving, and the process is alive.
    let (status, reply) = server.chat(&ok);
    assert_eq!(status, 200, "{reply}\n{}", server.log());
    assert_completion(&reply, 1, 4);
    assert!(server.child.try_wait().unwrap().is_none(), "the server exited: {}", server.log());
}

/// Requests/s and latency percentiles under 1, 4 and 16 concurrent clients on the tiny model,
/// as a Markdown table (the README's), with the mean batch the server formed. Each request: a
/// 224x224 dataset frame as a data URL and its question, greedy, a fixed `max_tokens`.
#[test]
#[ignore = "a benchmark: run with --ignored --nocapture"]
fn bench_serve() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, samples) = tiny_model(tmp.path());
    let server = Server::start(&model, &["--max-batch", "16"]);
    let requests = |max_tokens: u64| -> Vec<Value> {
        (0..16)
            .map(|i| {
                let sample = &samples[i * 5];
                let text = sample.messages.last().unwrap().joined_text();
                question(&data_url(&image_of(sample)), &text, json!({"temperature": 0, "max_tokens": max_tokens}))
            })
            .collect()
    };
    // Warm-up: first-use allocations are not what is measured.
    for r in &requests(16)[..2] {
        assert_eq!(server.chat(r).0, 200);
    }
    println!(
        "| max_tokens | concurrent clients | requests | requests/s | completion tokens/s | p50 latency (ms) | p90 (ms) | p99 (ms) | mean batch |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for max_tokens in [16, 64] {
        let requests = requests(max_tokens);
        for (clients, per_client) in [(1usize, 24usize), (4, 12), (16, 6)] {
            let batches_before = server.log().matches("batch of ").count();
            let start = Instant::now();
            let results: Vec<(Duration, u64)> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..clients)
                    .map(|c| {
                        let (server, requests) = (&server, &requests);
                        s.spawn(move || {
                            (0..per_client)
                                .map(|k| {
                                    let t = Instant::now();
                                    let (status, reply) = server.chat(&requests[(c + k * clients) % requests.len()]);
                                    assert_eq!(status, 200, "{reply}");
                                    (t.elapsed(), reply["usage"]["completion_tokens"].as_u64().unwrap())
                                })
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
            });
            let wall = start.elapsed().as_secs_f64();
            let batches = server.log().matches("batch of ").count() - batches_before;
            let mut latencies: Vec<f64> = results.iter().map(|(d, _)| d.as_secs_f64() * 1e3).collect();
            latencies.sort_by(f64::total_cmp);
            // Nearest rank.
            let pct = |p: f64| {
                latencies[((p / 100.0 * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len()) - 1]
            };
            let tokens: u64 = results.iter().map(|(_, t)| t).sum();
            println!(
                "| {max_tokens} | {clients} | {} | {:.1} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} |",
                results.len(),
                results.len() as f64 / wall,
                tokens as f64 / wall,
                pct(50.0),
                pct(90.0),
                pct(99.0),
                results.len() as f64 / batches.max(1) as f64
            );
        }
    }
}
