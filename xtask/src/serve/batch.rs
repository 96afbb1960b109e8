//! The generation worker: one thread owns the model and answers the queued requests in
//! batches, each batch one call of r1's batched KV-cache generation (every prompt prefilled
//! once, its cache repeated for the request's `n` choices, all rows decoded together), and
//! sends every choice's text to its request as the tokens are drawn.
//!
//! Batches are static: a request that arrives while a batch decodes waits for the next one.
//! Requests share a batch when one `generate` call can serve them all: the same number of
//! choices and the same sampling settings (any greedy requests together); each row still ends
//! at its own request's token limit and stop strings. A sampling request with a `seed` runs
//! alone, so that its reply depends on the request only and not on what it was batched with.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use r1_model::Qwen2_5VlModel;
use r1_model::checkpoint::{Assets, Prompt};
use r1_model::generate::SamplingConfig;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::api::{ApiError, FinishReason, Usage};

/// One request for the worker.
pub struct Job {
    pub prompt: Prompt,
    /// Choices to generate.
    pub n: usize,
    /// `max_new_tokens` is this request's own token limit.
    pub sampling: SamplingConfig,
    pub seed: Option<u64>,
    /// Strings that end a choice (left out of its text).
    pub stop: Vec<String>,
    pub events: Sender<Event>,
}

/// What the worker tells a request, in order: `Text` and `Finish` per choice (interleaved
/// across choices), then exactly one `Done` or `Failed`.
#[derive(Debug)]
pub enum Event {
    /// More text of choice `index`.
    Text { index: usize, text: String },
    /// Choice `index` has ended.
    Finish { index: usize, reason: FinishReason },
    /// Every choice has ended.
    Done(Usage),
    /// Generation failed; nothing follows.
    Failed(ApiError),
}

/// The worker's settings.
pub struct Worker {
    pub assets: Arc<Assets>,
    /// The inference view of the model (`valid()`).
    pub model: Qwen2_5VlModel,
    /// Sequences (requests times their `n`) per batch at most.
    pub max_rows: usize,
    /// How long to wait for more requests once one is queued.
    pub wait: Duration,
    /// Draws for sampling requests without a seed.
    pub rng: StdRng,
}

impl Worker {
    /// Starts the worker thread; it ends when every sender of the returned queue is gone.
    pub fn spawn(self) -> std::io::Result<Sender<Job>> {
        let (jobs, queue) = mpsc::channel();
        std::thread::Builder::new().name("generate".into()).spawn(move || self.run(queue))?;
        Ok(jobs)
    }

    fn run(mut self, queue: Receiver<Job>) {
        let mut pending = VecDeque::new();
        while self.collect(&queue, &mut pending) {
            let batch = take_batch(&mut pending, self.max_rows);
            self.generate(batch);
        }
    }

    /// Waits for a request, then for more during `wait` or until a batch is full. `false`
    /// when nothing is left and nothing more can come.
    fn collect(&self, queue: &Receiver<Job>, pending: &mut VecDeque<Job>) -> bool {
        if pending.is_empty() {
            match queue.recv() {
                Ok(job) => pending.push_back(job),
                Err(_) => return false,
            }
        }
        let deadline = Instant::now() + self.wait;
        loop {
            pending.extend(queue.try_iter());
            let now = Instant::now();
            if pending.iter().map(|j| j.n).sum::<usize>() >= self.max_rows || now >= deadline {
                return true;
            }
            match queue.recv_timeout(deadline - now) {
                Ok(job) => pending.push_back(job),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return true,
            }
        }
    }

    /// Generates one batch and answers each of its requests. A failure, a panic included, is
    /// answered to the batch's requests and leaves the worker serving.
    fn generate(&mut self, batch: Vec<Job>) {
        let start = Instant::now();
        let group = batch[0].n;
        let max_new_tokens = batch.iter().map(|j| j.sampling.max_new_tokens).max().unwrap_or(1);
        let config = SamplingConfig { max_new_tokens, ..batch[0].sampling };
        let mut seeded;
        let rng = match batch[0].seed.filter(|_| config.temperature > 0.0) {
            Some(seed) => {
                seeded = StdRng::seed_from_u64(seed);
                &mut seeded
            }
            None => &mut self.rng,
        };
        let prompts: Vec<&Prompt> = batch.iter().map(|j| &j.prompt).collect();
        let mut choices: Vec<Choice> = (0..batch.len() * group).map(|_| Choice::default()).collect();
        let (assets, model) = (&self.assets, &self.model);
        let stop_ids = assets.tokenizer.stop_ids();
        // The model is only read (each call has its own cache), so it is sound to go on with
        // it after a panic in the backend.
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            assets.generate_with(model, &prompts, group, &config, rng, |row, token| {
                choices[row].advance(token, &batch[row / group], row % group, &stop_ids, assets)
            })
        }));
        let outcome = match outcome {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(ApiError::server(format!("generation failed: {e}"))),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned());
                Err(ApiError::server(format!(
                    "generation failed: {}",
                    message.unwrap_or_else(|| "the backend panicked".into())
                )))
            }
        };
        let tokens: usize = choices.iter().map(|c| c.ids.len()).sum();
        let status = outcome.as_ref().err().map(|e| format!(": {e}")).unwrap_or_default();
        // Logged before the replies go out: the log reads in the order things happened.
        eprintln!(
            "batch of {} ({}): {tokens} tokens in {:.2} s{status}",
            count(batch.len(), "request"),
            count(choices.len(), "sequence"),
            start.elapsed().as_secs_f64()
        );
        for (job, choices) in batch.iter().zip(choices.chunks(group)) {
            let event = match &outcome {
                Ok(()) => Event::Done(Usage {
                    prompt_tokens: job.prompt.ids.len(),
                    completion_tokens: choices.iter().map(|c| c.ids.len()).sum(),
                }),
                Err(e) => Event::Failed(e.clone()),
            };
            // A client that has gone away no longer listens; nothing to do for it.
            let _ = job.events.send(event);
        }
    }
}

/// `n thing` or `n things`.
fn count(n: usize, thing: &str) -> String {
    if n == 1 { format!("1 {thing}") } else { format!("{n} {thing}s") }
}

/// The oldest request and every queued request that can share its `generate` call, up to
/// `max_rows` sequences, in queue order.
fn take_batch(pending: &mut VecDeque<Job>, max_rows: usize) -> Vec<Job> {
    let first = pending.pop_front().expect("collect leaves at least one request");
    let mut rows = first.n;
    let mut batch = vec![first];
    let mut i = 0;
    while i < pending.len() && rows + batch[0].n <= max_rows {
        if shares_batch(&batch[0], &pending[i]) {
            let job = pending.remove(i).expect("the index is in range");
            rows += job.n;
            batch.push(job);
        } else {
            i += 1;
        }
    }
    batch
}

/// Whether one `generate` call serves both: the same `n` and sampling settings (the token
/// limit aside), greedy requests always together, seeded sampling requests never with another.
fn shares_batch(a: &Job, b: &Job) -> bool {
    let (sa, sb) = (&a.sampling, &b.sampling);
    let greedy = sa.temperature == 0.0 && sb.temperature == 0.0;
    let same_sampling = sa.temperature == sb.temperature && sa.top_p == sb.top_p && sa.top_k == sb.top_k;
    a.n == b.n && (greedy || (same_sampling && a.seed.is_none() && b.seed.is_none()))
}

/// One choice as it is generated.
#[derive(Default)]
struct Choice {
    /// Tokens drawn, a stop token included.
    ids: Vec<u32>,
    /// Bytes of the decoded text already sent.
    sent: usize,
}

impl Choice {
    /// Takes the choice's next token, sends the text that is now final, and says whether the
    /// choice goes on.
    fn advance(&mut self, token: u32, job: &Job, index: usize, stop_ids: &[u32], assets: &Assets) -> bool {
        self.ids.push(token);
        // The whole reply is decoded again each time: byte-level tokens may complete a
        // character only together, so decoding tokens one by one would garble it.
        let text = match assets.tokenizer.decode(&self.ids, true) {
            Ok(text) => text,
            Err(e) => {
                let _ = job.events.send(Event::Failed(ApiError::server(format!("decoding the reply failed: {e}"))));
                return false;
            }
        };
        let stop_at = job.stop.iter().filter_map(|s| text.find(s.as_str())).min();
        let (end, reason) = if let Some(at) = stop_at {
            (at, Some(FinishReason::Stop))
        } else if stop_ids.contains(&token) {
            (text.len(), Some(FinishReason::Stop))
        } else if self.ids.len() >= job.sampling.max_new_tokens {
            (text.len(), Some(FinishReason::Length))
        } else {
            (final_prefix(&text, &job.stop), None)
        };
        let mut listening = true;
        if end > self.sent {
            listening = job.events.send(Event::Text { index, text: text[self.sent..end].to_string() }).is_ok();
            self.sent = end;
        }
        match reason {
            Some(reason) => {
                let _ = job.events.send(Event::Finish { index, reason });
                false
            }
            // A request whose client has gone is not decoded further.
            None => listening,
        }
    }
}

/// How much of a reply still being generated is final: all but a trailing incomplete
/// character and a trailing part that may be the start of a stop string. The byte-level
/// decoder turns an incomplete character at the end into one U+FFFD; an invalid sequence
/// before other text stays U+FFFD whatever follows, so only the last one is held back.
fn final_prefix(text: &str, stop: &[String]) -> usize {
    let text = text.strip_suffix('\u{FFFD}').unwrap_or(text);
    let complete = text.len();
    text.char_indices().map(|(i, _)| i).find(|&i| stop.iter().any(|s| s.starts_with(&text[i..]))).unwrap_or(complete)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(n: usize, temperature: f64, seed: Option<u64>) -> Job {
        Job {
            prompt: Prompt { ids: vec![1], images: Vec::new() },
            n,
            sampling: SamplingConfig { max_new_tokens: 4, temperature, top_p: 1.0, top_k: 0 },
            seed,
            stop: Vec::new(),
            events: mpsc::channel().0,
        }
    }

    #[test]
    fn batches_take_compatible_requests_in_order_up_to_the_limit() {
        let mut pending: VecDeque<Job> = [
            job(1, 0.0, None),
            job(2, 0.0, None),
            job(1, 0.7, None),
            job(1, 0.0, Some(3)),
            job(1, 0.0, None),
            job(1, 0.0, None),
        ]
        .into();
        // Greedy n=1 requests go together whatever their seed; n=2 and sampling wait.
        let batch = take_batch(&mut pending, 3);
        assert_eq!(batch.iter().map(|j| (j.n, j.seed)).collect::<Vec<_>>(), [(1, None), (1, Some(3)), (1, None)]);
        assert_eq!(pending.len(), 3);
        assert_eq!(take_batch(&mut pending, 3).len(), 1, "n=2 has no partner");
        assert_eq!(take_batch(&mut pending, 3)[0].sampling.temperature, 0.7);
        assert_eq!(take_batch(&mut pending, 3).len(), 1);
        assert!(pending.is_empty());
    }

    #[test]
    fn seeded_sampling_runs_alone() {
        let mut pending: VecDeque<Job> =
            [job(1, 1.0, Some(1)), job(1, 1.0, Some(1)), job(1, 1.0, None), job(1, 1.0, None)].into();
        assert_eq!(take_batch(&mut pending, 8).len(), 1);
        assert_eq!(take_batch(&mut pending, 8).len(), 1);
        assert_eq!(take_batch(&mut pending, 8).len(), 2, "unseeded sampling with equal settings shares");
    }

    #[test]
    fn text_that_may_begin_a_stop_string_is_held_back() {
        let stop = vec!["</answer>".to_string(), "STOP".to_string()];
        assert_eq!(final_prefix("move up </ans", &stop), "move up ".len());
        assert_eq!(final_prefix("move up ST", &stop), "move up ".len());
        assert_eq!(final_prefix("move up <", &stop), "move up ".len());
        assert_eq!(final_prefix("move up", &stop), "move up".len());
        assert_eq!(final_prefix("caf\u{FFFD}", &[]), 3);
        assert_eq!(final_prefix("\u{FFFD}\u{FFFD}", &[]), 3);
        assert_eq!(final_prefix("é</", &stop), "é".len());
    }
}
