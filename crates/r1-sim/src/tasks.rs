//! The task suite: five tasks that mirror Robot-R1's RLBench training tasks and five held
//! out for evaluation. Each task draws a variation (colours, sizes, poses, distractors) from
//! a seeded generator and scripts the expert as named subtasks, one waypoint each.

use crate::expert::Waypoint;
use crate::geom::{Vec3, add};
use crate::rng::Rng;
use crate::world::{Colour, Event, HANDLE_DEPTH, LID_THICKNESS, Object, PALETTE, SILVER, Shape, TABLE_TOP, WALL};

/// A drawn task instance: the scene, how to phrase it, and the expert's script.
#[derive(Clone, Debug)]
pub struct Setup {
    pub variation: u32,
    pub descriptions: Vec<String>,
    pub objects: Vec<Object>,
    /// The gripper flag at the start (closed for pushing tasks).
    pub gripper_open: bool,
    pub waypoints: Vec<Waypoint>,
}

/// One task of the suite.
#[derive(Clone, Copy, Debug)]
pub struct Task {
    pub name: &'static str,
    /// Held out from training (the "Out" split of the question sets).
    pub held_out: bool,
    build: fn(&mut Rng) -> Setup,
}

impl Task {
    pub fn build(&self, rng: &mut Rng) -> Setup {
        (self.build)(rng)
    }
}

/// The suite, training tasks first.
pub const TASKS: [Task; 10] = [
    Task { name: "pick_up_cup", held_out: false, build: pick_up_cup },
    Task { name: "push_button", held_out: false, build: push_button },
    Task { name: "put_rubbish_in_bin", held_out: false, build: put_rubbish_in_bin },
    Task { name: "phone_on_base", held_out: false, build: phone_on_base },
    Task { name: "take_lid_off_saucepan", held_out: false, build: take_lid_off_saucepan },
    Task { name: "stack_blocks", held_out: true, build: stack_blocks },
    Task { name: "open_drawer", held_out: true, build: open_drawer },
    Task { name: "slide_block_to_target", held_out: true, build: slide_block_to_target },
    Task { name: "put_item_in_drawer", held_out: true, build: put_item_in_drawer },
    Task { name: "reach_target", held_out: true, build: reach_target },
];

/// Clearance of the pre-grasp pose above an object, and of retreats.
const APPROACH: f64 = 0.1;
/// Height gained when lifting a grasped object.
const LIFT: f64 = 0.18;
/// Gap left under a placed object before it is released (it then settles).
const PLACE_GAP: f64 = 0.004;

/// Fills `{name}` slots of each template.
fn phrase(templates: &[&str], slots: &[(&str, &str)]) -> Vec<String> {
    templates.iter().map(|t| slots.iter().fold(t.to_string(), |s, (k, v)| s.replace(&format!("{{{k}}}"), v))).collect()
}

/// `k` distinct palette colours with their palette indices.
fn colours(rng: &mut Rng, k: usize) -> Vec<(u32, Colour)> {
    rng.distinct(PALETTE.len(), k).into_iter().map(|i| (i as u32, PALETTE[i])).collect()
}

/// Draws table positions whose footprints (discs of the given radii) do not overlap.
struct Placer {
    taken: Vec<(f64, f64, f64)>,
}

/// Where objects are put: the middle of the table, in view and in reach.
const REGION_X: (f64, f64) = (0.0, 0.45);
const REGION_Y: (f64, f64) = (-0.3, 0.3);

impl Placer {
    fn new() -> Self {
        Self { taken: Vec::new() }
    }

    /// Reserves a disc of `radius` at a fixed place.
    fn reserve(&mut self, x: f64, y: f64, radius: f64) {
        self.taken.push((x, y, radius));
    }

    /// A free spot for a disc of `radius` inside `xs` x `ys`. After 500 rejected draws it
    /// keeps the last one: an overlap is a visual defect only, and the regions the tasks use
    /// leave so much room that the suite's tests never see it.
    fn place(&mut self, rng: &mut Rng, radius: f64, xs: (f64, f64), ys: (f64, f64)) -> (f64, f64) {
        let mut spot = (0.0, 0.0);
        for _ in 0..500 {
            spot = (rng.range(xs.0 + radius, xs.1 - radius), rng.range(ys.0 + radius, ys.1 - radius));
            if self.is_free(spot, radius) {
                break;
            }
        }
        self.reserve(spot.0, spot.1, radius);
        spot
    }

    fn is_free(&self, (x, y): (f64, f64), radius: f64) -> bool {
        self.taken
            .iter()
            .all(|&(a, b, r)| (x - a) * (x - a) + (y - b) * (y - b) > (r + radius + 0.01) * (r + radius + 0.01))
    }
}

fn up(p: Vec3, dz: f64) -> Vec3 {
    add(p, [0.0, 0.0, dz])
}

/// The tip position that grasps `o`: its centre, but at least a centimetre above the table
/// so that the fingers stay clear of it.
fn grasp_point(o: &Object) -> Vec3 {
    [o.position[0], o.position[1], o.position[2].max(TABLE_TOP + 0.01)]
}

/// The tip height that puts `o`, grasped at `grasp`, just above a surface at `support`.
fn place_height(o: &Object, grasp: Vec3, support: f64) -> f64 {
    support + o.size[2] / 2.0 + (grasp[2] - o.position[2]) + PLACE_GAP
}

fn grasp(object: usize) -> Event {
    Event::Attach { object, follow: [true; 3], held: true }
}

fn release(object: usize) -> Event {
    Event::Detach { object, drop: true }
}

/// Approach, grasp and lift `objects[i]`, named `name`: the opening of every pick task.
fn pick(objects: &[Object], i: usize, name: &str, lift_to: f64) -> Vec<Waypoint> {
    let g = grasp_point(&objects[i]);
    vec![
        Waypoint::new(format!("move above the {name}"), up([g[0], g[1], objects[i].top()], APPROACH), true),
        Waypoint::new(format!("grasp the {name}"), g, false).with(grasp(i)),
        Waypoint::new(format!("lift the {name}"), [g[0], g[1], lift_to.max(g[2] + LIFT)], false),
    ]
}

/// Places the object grasped at `g` (index `i`) on a support of height `support` at `(x, y)`,
/// then retreats upwards.
fn place(
    objects: &[Object],
    i: usize,
    g: Vec3,
    (x, y): (f64, f64),
    support: f64,
    above: f64,
    subtasks: [String; 3],
) -> Vec<Waypoint> {
    let [over, put, away] = subtasks;
    let z = place_height(&objects[i], g, support);
    vec![
        Waypoint::new(over, [x, y, above.max(z + APPROACH)], false),
        Waypoint::new(put, [x, y, z], true).with(release(i)),
        Waypoint::new(away, [x, y, above.max(z + APPROACH)], true),
    ]
}

fn pick_up_cup(rng: &mut Rng) -> Setup {
    let n = 2 + rng.below(2);
    let cs = colours(rng, n);
    let mut placer = Placer::new();
    let objects: Vec<Object> = cs
        .iter()
        .map(|&(_, c)| {
            let (d, h) = (rng.range(0.06, 0.075), rng.range(0.08, 0.11));
            let (x, y) = placer.place(rng, d / 2.0 + 0.03, REGION_X, REGION_Y);
            Object::on_table(format!("{} cup", c.name), Shape::Cup, c, x, y, [d, d, h])
        })
        .collect();
    let name = &objects[0].name;
    let descriptions = phrase(
        &[
            "pick up the {c} cup",
            "grasp the {c} cup and lift it up",
            "lift the {c} cup off the table",
            "take the {c} cup",
        ],
        &[("c", cs[0].1.name)],
    );
    let waypoints = pick(&objects, 0, name, 0.0);
    Setup { variation: cs[0].0, descriptions, objects, gripper_open: true, waypoints }
}

fn push_button(rng: &mut Rng) -> Setup {
    let n = 1 + rng.below(3);
    let cs = colours(rng, n);
    let mut placer = Placer::new();
    let travel = 0.012;
    let (x, y) = placer.place(rng, 0.07, REGION_X, REGION_Y);
    let mut objects = vec![Object::on_table(
        format!("{} button", cs[0].1.name),
        Shape::Button { travel },
        cs[0].1,
        x,
        y,
        [0.08, 0.08, 0.04],
    )];
    for &(_, c) in &cs[1..] {
        let s = rng.range(0.04, 0.055);
        let (bx, by) = placer.place(rng, s, REGION_X, REGION_Y);
        objects.push(Object::on_table(format!("{} block", c.name), Shape::Block, c, bx, by, [s, s, s]));
    }
    let (b, c) = (&objects[0], cs[0].1.name);
    let top = b.top();
    let waypoints = vec![
        Waypoint::new(format!("move above the {c} button"), [x, y, top + APPROACH], false),
        Waypoint::new(format!("push the {c} button"), [x, y, top - travel], false),
        Waypoint::new(format!("release the {c} button"), [x, y, top + APPROACH], false),
    ];
    let descriptions = phrase(
        &["push the {c} button", "press the {c} button", "push down the {c} button", "press down on the {c} button"],
        &[("c", c)],
    );
    Setup { variation: cs[0].0, descriptions, objects, gripper_open: false, waypoints }
}

fn put_rubbish_in_bin(rng: &mut Rng) -> Setup {
    let cs = colours(rng, 4);
    let mut placer = Placer::new();
    let (bx, by) = placer.place(rng, 0.13, REGION_X, REGION_Y);
    let bin = Object::on_table("bin", Shape::Container, cs[0].1, bx, by, [0.16, 0.2, rng.range(0.1, 0.13)]);
    let s = rng.range(0.035, 0.045);
    let (rx, ry) = placer.place(rng, 0.05, REGION_X, REGION_Y);
    let rubbish = Object::on_table("rubbish", Shape::Block, cs[1].1, rx, ry, [s, s, s * 0.8]);
    let mut objects = vec![rubbish, bin];
    for &(_, c) in &cs[2..2 + rng.below(3)] {
        let (d, h) = (rng.range(0.04, 0.05), rng.range(0.05, 0.08));
        let (x, y) = placer.place(rng, 0.05, REGION_X, REGION_Y);
        objects.push(Object::on_table(format!("{} can", c.name), Shape::Cylinder, c, x, y, [d, d, h]));
    }
    let bin_top = objects[1].top();
    let mut waypoints = pick(&objects, 0, "rubbish", bin_top + APPROACH);
    let over_bin = [bx, by, bin_top + APPROACH];
    waypoints.push(Waypoint::new("drop the rubbish into the bin", over_bin, true).with(release(0)));
    waypoints.push(Waypoint::new("move the gripper away from the bin", up(over_bin, APPROACH), true));
    let descriptions = phrase(
        &[
            "put the rubbish in the bin",
            "drop the rubbish into the bin",
            "pick up the rubbish and leave it in the trash can",
            "throw away the trash, leaving any other objects alone",
        ],
        &[],
    );
    Setup { variation: 0, descriptions, objects, gripper_open: true, waypoints }
}

fn phone_on_base(rng: &mut Rng) -> Setup {
    let cs = colours(rng, 3);
    let mut placer = Placer::new();
    let (px, py) = placer.place(rng, 0.09, REGION_X, REGION_Y);
    let (bx, by) = placer.place(rng, 0.11, REGION_X, REGION_Y);
    let phone_colour = *rng.pick(&[PALETTE[9], PALETTE[11], PALETTE[8]]);
    let mut objects = vec![
        Object::on_table("phone", Shape::Block, phone_colour, px, py, [0.07, 0.14, 0.016]),
        Object::on_table("phone base", Shape::Plate, cs[0].1, bx, by, [0.1, 0.19, 0.02]),
    ];
    if rng.below(2) == 1 {
        let s = rng.range(0.04, 0.05);
        let (x, y) = placer.place(rng, s, REGION_X, REGION_Y);
        objects.push(Object::on_table(format!("{} block", cs[1].1.name), Shape::Block, cs[1].1, x, y, [s, s, s]));
    }
    let mut waypoints = pick(&objects, 0, "phone", 0.0);
    let g = waypoints[1].position;
    let lifted = waypoints[2].position[2];
    let subtasks =
        ["move the phone above the base".into(), "put the phone on the base".into(), "move the gripper away".into()];
    waypoints.extend(place(&objects, 0, g, (bx, by), objects[1].top(), lifted, subtasks));
    let descriptions = phrase(
        &[
            "put the phone on the base",
            "put the phone back on the phone base",
            "place the phone on its stand",
            "dock the phone on its base",
        ],
        &[],
    );
    Setup { variation: 0, descriptions, objects, gripper_open: true, waypoints }
}

fn take_lid_off_saucepan(rng: &mut Rng) -> Setup {
    let cs = colours(rng, 2);
    let mut placer = Placer::new();
    let d = rng.range(0.14, 0.18);
    let h = rng.range(0.07, 0.09);
    // The handle sticks out along +y: keep it on the table.
    let (x, y) = placer.place(rng, d / 2.0 + 0.03, REGION_X, (REGION_Y.0, REGION_Y.1 - 0.1));
    placer.reserve(x, y + d / 2.0 + 0.06, 0.05);
    let pan = Object::on_table("saucepan", Shape::Saucepan, SILVER, x, y, [d, d, h]);
    let lid_h = LID_THICKNESS + 0.025;
    let lid = Object::new(
        format!("{} lid", cs[0].1.name),
        Shape::Lid,
        cs[0].1,
        [x, y, TABLE_TOP + h + lid_h / 2.0],
        [d + 0.01, d + 0.01, lid_h],
    );
    let mut objects = vec![lid, pan];
    if rng.below(2) == 1 {
        let s = rng.range(0.04, 0.05);
        let (bx, by) = placer.place(rng, s, REGION_X, REGION_Y);
        objects.push(Object::on_table(format!("{} block", cs[1].1.name), Shape::Block, cs[1].1, bx, by, [s, s, s]));
    }
    let knob = [x, y, objects[0].top() - 0.012];
    let waypoints = vec![
        Waypoint::new("move above the lid", up(knob, APPROACH), true),
        Waypoint::new("grasp the lid by its knob", knob, false).with(grasp(0)),
        Waypoint::new("lift the lid off the saucepan", up(knob, LIFT), false),
    ];
    let descriptions = phrase(
        &[
            "take the lid off the saucepan",
            "using the knob, lift the lid off the pan",
            "remove the lid from the saucepan",
            "lift the {c} lid off the pan",
        ],
        &[("c", cs[0].1.name)],
    );
    Setup { variation: 0, descriptions, objects, gripper_open: true, waypoints }
}

fn stack_blocks(rng: &mut Rng) -> Setup {
    let n = 2 + rng.below(2);
    let cs = colours(rng, n);
    let mut placer = Placer::new();
    let objects: Vec<Object> = cs
        .iter()
        .map(|&(_, c)| {
            let s = rng.range(0.045, 0.055);
            let (x, y) = placer.place(rng, s, REGION_X, REGION_Y);
            Object::on_table(format!("{} block", c.name), Shape::Block, c, x, y, [s, s, s])
        })
        .collect();
    let (top, bottom) = (cs[0].1.name, cs[1].1.name);
    let target = &objects[1];
    let mut waypoints = pick(&objects, 0, &objects[0].name, target.top() + objects[0].size[2] + APPROACH);
    let g = waypoints[1].position;
    let lifted = waypoints[2].position[2];
    let subtasks = [
        format!("move the {top} block above the {bottom} block"),
        format!("put the {top} block on the {bottom} block"),
        "move the gripper away".into(),
    ];
    waypoints.extend(place(&objects, 0, g, (target.position[0], target.position[1]), target.top(), lifted, subtasks));
    let descriptions = phrase(
        &[
            "stack the {a} block on top of the {b} block",
            "put the {a} block on the {b} block",
            "place the {a} cube onto the {b} cube",
            "pick up the {a} block and stack it on the {b} block",
        ],
        &[("a", top), ("b", bottom)],
    );
    Setup { variation: cs[0].0, descriptions, objects, gripper_open: true, waypoints }
}

const DRAWER_NAMES: [&str; 3] = ["bottom", "middle", "top"];
const DRAWER_DEPTH: f64 = 0.17;
/// How far an open drawer is pulled out.
const DRAWER_TRAVEL: f64 = 0.16;

/// A cabinet against the back of the table with three drawers facing the camera; `open`
/// drawer (if any) starts pulled out. Returns the objects (cabinet first, then the drawers
/// bottom to top) and the cabinet's front face x.
fn cabinet(rng: &mut Rng, placer: &mut Placer, colour: Colour, open: Option<usize>) -> (Vec<Object>, f64) {
    let size = [0.2, rng.range(0.22, 0.26), 0.3];
    let (x, y) = placer.place(rng, 0.14, (-0.15, 0.25), REGION_Y);
    placer.reserve(x + 0.2, y, 0.12);
    let front = x + size[0] / 2.0;
    let mut objects = vec![Object::on_table("cabinet", Shape::Cabinet, colour, x, y, size)];
    for (k, name) in DRAWER_NAMES.iter().enumerate() {
        let (lo, hi) = (front - DRAWER_DEPTH, front + WALL + HANDLE_DEPTH);
        let pulled = if open == Some(k) { DRAWER_TRAVEL } else { 0.0 };
        let z = TABLE_TOP + 0.055 + 0.095 * k as f64;
        objects.push(Object::new(
            format!("{name} drawer"),
            Shape::Drawer,
            colour,
            [(lo + hi) / 2.0 + pulled, y, z],
            [hi - lo, size[1] - 0.03, 0.08],
        ));
    }
    (objects, front)
}

fn open_drawer(rng: &mut Rng) -> Setup {
    let d = rng.below(3);
    let colour = PALETTE[rng.below(PALETTE.len())];
    let mut placer = Placer::new();
    let (objects, _) = cabinet(rng, &mut placer, colour, None);
    let which = DRAWER_NAMES[d];
    let h = objects[1 + d].handle();
    let waypoints = vec![
        Waypoint::new(format!("move in front of the {which} drawer's handle"), add(h, [0.1, 0.0, 0.0]), true),
        Waypoint::new(format!("grasp the {which} drawer's handle"), h, false).with(Event::Attach {
            object: 1 + d,
            follow: [true, false, false],
            held: true,
        }),
        Waypoint::new(format!("pull the {which} drawer open"), add(h, [DRAWER_TRAVEL, 0.0, 0.0]), true)
            .with(Event::Detach { object: 1 + d, drop: false }),
        Waypoint::new("move the gripper away", add(h, [DRAWER_TRAVEL + 0.04, 0.0, 0.15]), true),
    ];
    let descriptions = phrase(
        &[
            "open the {d} drawer",
            "grip the {d} handle and pull the {d} drawer open",
            "slide the {d} drawer open",
            "pull the {d} drawer out",
        ],
        &[("d", which)],
    );
    Setup { variation: d as u32, descriptions, objects, gripper_open: true, waypoints }
}

fn slide_block_to_target(rng: &mut Rng) -> Setup {
    let cs = colours(rng, 2);
    let x = rng.range(0.1, 0.4);
    let dist = rng.range(0.15, 0.25);
    let y = rng.range(REGION_Y.0 + 0.05, REGION_Y.1 - 0.05 - dist);
    // Push towards +y or -y: mirror the layout half of the time.
    let dir = if rng.below(2) == 0 { 1.0 } else { -1.0 };
    let (y, ty) = (dir * y, dir * (y + dist));
    let s = 0.05;
    let objects = vec![
        Object::on_table(format!("{} block", cs[0].1.name), Shape::Block, cs[0].1, x, y, [s, s, s]),
        Object::on_table(format!("{} target", cs[1].1.name), Shape::Plate, cs[1].1, x, ty, [0.09, 0.09, 0.004]),
    ];
    // The closed fingers (about 2 cm each side of the tip) touch the block's far side.
    let behind = s / 2.0 + 0.025;
    let low = TABLE_TOP + 0.02;
    let (a, b) = (cs[0].1.name, cs[1].1.name);
    let waypoints = vec![
        Waypoint::new(format!("move the gripper beside the {a} block"), [x, y - dir * behind, low + APPROACH], false),
        Waypoint::new(format!("lower the gripper beside the {a} block"), [x, y - dir * behind, low], false)
            .with(Event::Attach { object: 0, follow: [false, true, false], held: false }),
        Waypoint::new(format!("push the {a} block onto the {b} target"), [x, ty - dir * behind, low], false)
            .with(Event::Detach { object: 0, drop: false }),
        Waypoint::new("lift the gripper", [x, ty - dir * behind, low + APPROACH], false),
    ];
    let descriptions = phrase(
        &[
            "slide the block to the target",
            "push the {a} block onto the {b} target",
            "slide the {a} cube until it is on the {b} square",
            "move the block onto the target by sliding it",
        ],
        &[("a", a), ("b", b)],
    );
    Setup { variation: 0, descriptions, objects, gripper_open: false, waypoints }
}

fn put_item_in_drawer(rng: &mut Rng) -> Setup {
    let d = rng.below(3);
    let cs = colours(rng, 2);
    let mut placer = Placer::new();
    let (mut objects, front) = cabinet(rng, &mut placer, cs[0].1, Some(d));
    let s = rng.range(0.035, 0.045);
    let (ix, iy) = placer.place(rng, s, (0.15, REGION_X.1), REGION_Y);
    let item = objects.len();
    objects.push(Object::on_table(format!("{} block", cs[1].1.name), Shape::Block, cs[1].1, ix, iy, [s, s, s]));
    let (which, c) = (DRAWER_NAMES[d], cs[1].1.name);
    let cabinet_top = objects[0].top();
    let mut waypoints = pick(&objects, item, &objects[item].name, cabinet_top + APPROACH);
    let g = waypoints[1].position;
    let lifted = waypoints[2].position[2];
    let drawer = &objects[1 + d];
    // Centre of the part of the tray that is out of the cabinet.
    let tray_x = (front + drawer.max()[0] - HANDLE_DEPTH - WALL) / 2.0;
    let subtasks = [
        format!("move the {c} block above the {which} drawer"),
        format!("put the {c} block in the {which} drawer"),
        "move the gripper away".into(),
    ];
    waypoints.extend(place(&objects, item, g, (tray_x, drawer.position[1]), drawer.support_height(), lifted, subtasks));
    let descriptions = phrase(
        &[
            "put the item in the {d} drawer",
            "put the {c} block away in the {d} drawer",
            "place the {c} block into the open {d} drawer",
            "store the item in the {d} drawer",
        ],
        &[("d", which), ("c", c)],
    );
    Setup { variation: d as u32, descriptions, objects, gripper_open: true, waypoints }
}

fn reach_target(rng: &mut Rng) -> Setup {
    let cs = colours(rng, 3);
    let mut placer = Placer::new();
    let objects: Vec<Object> = cs
        .iter()
        .map(|&(_, c)| {
            let (x, y) = placer.place(rng, 0.05, REGION_X, REGION_Y);
            let z = TABLE_TOP + rng.range(0.08, 0.3);
            Object::new(format!("{} target", c.name), Shape::Block, c, [x, y, z], [0.04; 3])
        })
        .collect();
    let c = cs[0].1.name;
    let t = objects[0].position;
    let waypoints = vec![
        Waypoint::new(format!("move towards the {c} target"), up(t, 0.08), true),
        Waypoint::new(format!("reach the {c} target"), t, true),
    ];
    let descriptions = phrase(
        &[
            "reach the {c} target",
            "touch the {c} target with the gripper",
            "move the gripper to the {c} target",
            "reach the {c} thing",
        ],
        &[("c", c)],
    );
    Setup { variation: cs[0].0, descriptions, objects, gripper_open: true, waypoints }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geom::{norm, sub};
    use r1_data::EnvMetadata;

    fn overlaps(a: &Object, b: &Object) -> bool {
        (0..3).all(|i| a.min()[i] < b.max()[i] - 1e-9 && b.min()[i] < a.max()[i] - 1e-9)
    }

    /// Over many seeds: waypoints are a centimetre apart and in the workspace, objects lie
    /// in the workspace, free-standing objects do not intersect, every task has several
    /// phrasings with no unfilled slot.
    #[test]
    fn every_task_draws_valid_scenes() {
        let ws = EnvMetadata::default().workspace;
        for task in TASKS {
            for seed in 0..200 {
                let s = task.build(&mut Rng::new(seed));
                assert!(s.descriptions.len() >= 3 && s.descriptions.iter().all(|d| !d.contains('{')), "{}", task.name);
                let mut at = [0.3, 0.0, 1.2];
                for w in &s.waypoints {
                    assert!(norm(sub(w.position, at)) >= 0.01, "{} seed {seed}: {}", task.name, w.subtask);
                    assert!(ws.contains(w.position), "{} seed {seed}: {:?}", task.name, w.position);
                    at = w.position;
                }
                let mut names: Vec<_> = s.objects.iter().map(|o| &o.name).collect();
                names.sort();
                names.dedup();
                assert_eq!(names.len(), s.objects.len(), "{}: names must be unique", task.name);
                for (i, a) in s.objects.iter().enumerate() {
                    assert!(
                        ws.contains(a.min()) && ws.contains(a.max()),
                        "{} seed {seed}: {} out of the workspace",
                        task.name,
                        a.name
                    );
                    for b in &s.objects[i + 1..] {
                        let nested = matches!(a.shape, Shape::Cabinet | Shape::Drawer)
                            && matches!(b.shape, Shape::Drawer)
                            || matches!((a.shape, b.shape), (Shape::Lid, Shape::Saucepan));
                        assert!(nested || !overlaps(a, b), "{} seed {seed}: {} overlaps {}", task.name, a.name, b.name);
                    }
                }
            }
        }
    }

    #[test]
    fn five_tasks_are_held_out() {
        assert_eq!(TASKS.iter().filter(|t| t.held_out).count(), 5);
        let mut names: Vec<_> = TASKS.iter().map(|t| t.name).collect();
        names.dedup();
        assert_eq!(names.len(), 10);
    }

    #[test]
    fn phrases_fill_every_slot() {
        assert_eq!(phrase(&["{a} on {b} ({a})"], &[("a", "x"), ("b", "y")]), vec!["x on y (x)"]);
    }
}
