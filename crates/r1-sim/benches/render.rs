//! Rendering throughput at 224x224 and the cost of one whole episode.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use r1_sim::episode::simulate_episode;
use r1_sim::geom::Mesh;
use r1_sim::render::{Renderer, View};
use r1_sim::tasks::TASKS;
use r1_sim::world::{Object, PALETTE, Shape, push_gripper};

fn frames(c: &mut Criterion) {
    let renderer = Renderer::new(View::front(224));
    let mut mesh = Mesh::default();
    for (k, c) in PALETTE.iter().take(4).enumerate() {
        let y = -0.3 + 0.2 * k as f64;
        Object::on_table(c.name, Shape::Cup, *c, 0.25, y, [0.07, 0.07, 0.1]).mesh(&mut mesh);
    }
    push_gripper(&mut mesh, [0.3, 0.0, 1.0], true, 0.0);
    let mut g = c.benchmark_group("render_224");
    g.throughput(Throughput::Elements(1));
    g.bench_function("rasterise", |b| b.iter(|| renderer.render(&mesh)));
    g.bench_function("rasterise_and_png", |b| b.iter(|| renderer.render(&mesh).png().unwrap()));
    g.finish();
    let mut g = c.benchmark_group("episode_224");
    g.sample_size(10);
    for task in [&TASKS[0], &TASKS[8]] {
        g.bench_function(task.name, |b| b.iter(|| simulate_episode(task, 0, 0, 224).unwrap()));
    }
    g.finish();
}

criterion_group!(benches, frames);
criterion_main!(benches);
