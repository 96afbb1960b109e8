//! The tabletop world: RLBench's frame, the table, the objects on it, and what happens to
//! them while the expert moves (grasped objects follow the gripper kinematically, released
//! ones settle on whatever is below them, buttons give way under the gripper).

use r1_data::SceneObject;

use crate::geom::{Mesh, Vec3, add, sub};

/// Height of the table surface (RLBench: the origin the prompts name is at its centre).
pub const TABLE_TOP: f64 = 0.752;
/// Thickness of container floors and walls.
pub const WALL: f64 = 0.008;

/// A named colour, as the task descriptions and the scene description name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Colour {
    pub name: &'static str,
    pub rgb: [u8; 3],
}

const fn colour(name: &'static str, rgb: [u8; 3]) -> Colour {
    Colour { name, rgb }
}

/// The colours objects are drawn from (a subset of RLBench's variation colours chosen to be
/// told apart at 224x224 and from the brown table).
pub const PALETTE: [Colour; 12] = [
    colour("red", [210, 30, 30]),
    colour("green", [40, 170, 50]),
    colour("blue", [35, 70, 215]),
    colour("yellow", [235, 215, 40]),
    colour("cyan", [40, 205, 215]),
    colour("magenta", [205, 45, 195]),
    colour("orange", [245, 135, 25]),
    colour("purple", [115, 45, 170]),
    colour("white", [240, 240, 240]),
    colour("black", [25, 25, 25]),
    colour("pink", [245, 150, 180]),
    colour("navy", [20, 30, 110]),
];

pub const GREY: Colour = colour("grey", [140, 140, 145]);
pub const SILVER: Colour = colour("silver", [190, 192, 198]);
pub const BROWN: Colour = colour("brown", [120, 85, 55]);

/// The solid kinds the tasks build from. `kind()` is the name the scene description uses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shape {
    Block,
    /// A cylinder standing on its base.
    Cylinder,
    /// A cylinder with a dark interior disc on top.
    Cup,
    /// A thin slab (a phone's base, a target square).
    Plate,
    /// An open-topped box (a bin).
    Container,
    /// A square base with a round cap that can be pushed down by `travel` metres.
    Button {
        travel: f64,
    },
    /// A solid chest whose drawers are separate objects.
    Cabinet,
    /// A drawer facing +x: tray, front panel and handle.
    Drawer,
    /// A flat disc with a knob on top.
    Lid,
    /// A pot with a handle along +y.
    Saucepan,
}

impl Shape {
    pub fn kind(self) -> &'static str {
        match self {
            Shape::Block => "box",
            Shape::Cylinder => "cylinder",
            Shape::Cup => "cup",
            Shape::Plate => "plate",
            Shape::Container => "container",
            Shape::Button { .. } => "button",
            Shape::Cabinet => "cabinet",
            Shape::Drawer => "drawer",
            Shape::Lid => "lid",
            Shape::Saucepan => "saucepan",
        }
    }
}

/// One object: an axis-aligned bounding box with a shape inside it.
#[derive(Clone, Debug, PartialEq)]
pub struct Object {
    pub name: String,
    pub shape: Shape,
    pub colour: Colour,
    /// Centre of the bounding box.
    pub position: Vec3,
    /// Extent of the bounding box along x, y, z.
    pub size: Vec3,
    /// How far a button's cap is pushed down (metres); zero for other shapes.
    pub pressed: f64,
}

impl Object {
    pub fn new(name: impl Into<String>, shape: Shape, colour: Colour, position: Vec3, size: Vec3) -> Self {
        Self { name: name.into(), shape, colour, position, size, pressed: 0.0 }
    }

    /// An object standing on the table at `(x, y)`.
    pub fn on_table(name: impl Into<String>, shape: Shape, colour: Colour, x: f64, y: f64, size: Vec3) -> Self {
        Self::new(name, shape, colour, [x, y, TABLE_TOP + size[2] / 2.0], size)
    }

    pub fn min(&self) -> Vec3 {
        sub(self.position, half(self.size))
    }

    pub fn max(&self) -> Vec3 {
        add(self.position, half(self.size))
    }

    pub fn top(&self) -> f64 {
        self.max()[2]
    }

    /// The height another object comes to rest at when dropped onto this one: the inner
    /// floor of open containers, the top of everything else.
    pub fn support_height(&self) -> f64 {
        match self.shape {
            Shape::Container | Shape::Drawer => self.min()[2] + WALL,
            _ => self.top(),
        }
    }

    /// True when `(x, y)` lies over the object's footprint.
    pub fn covers(&self, x: f64, y: f64) -> bool {
        let (lo, hi) = (self.min(), self.max());
        x >= lo[0] && x <= hi[0] && y >= lo[1] && y <= hi[1]
    }

    /// Where a drawer's handle is (the point the gripper closes on).
    pub fn handle(&self) -> Vec3 {
        [self.max()[0] - HANDLE_DEPTH / 2.0, self.position[1], self.position[2]]
    }

    /// Half the distance between the fingers when they close on this object.
    pub fn grip_half_width(&self) -> f64 {
        match self.shape {
            Shape::Drawer => HANDLE_HALF_WIDTH,
            Shape::Lid => KNOB_RADIUS,
            _ => self.size[1] / 2.0,
        }
    }

    pub fn scene(&self, held: bool) -> SceneObject {
        SceneObject {
            name: self.name.clone(),
            shape: self.shape.kind().into(),
            colour: self.colour.name.into(),
            position: self.position,
            size: self.size,
            held,
        }
    }

    /// Appends the object's triangles.
    pub fn mesh(&self, mesh: &mut Mesh) {
        let (lo, hi, c, rgb) = (self.min(), self.max(), self.position, self.colour.rgb);
        let radius = self.size[0].min(self.size[1]) / 2.0;
        match self.shape {
            Shape::Block | Shape::Plate | Shape::Cabinet => mesh.push_box(lo, hi, rgb),
            Shape::Cylinder => mesh.push_cylinder(c[0], c[1], lo[2], hi[2], radius, rgb),
            Shape::Cup => {
                mesh.push_cylinder(c[0], c[1], lo[2], hi[2], radius, rgb);
                mesh.push_cylinder(c[0], c[1], hi[2], hi[2] + 0.001, radius * 0.8, shade(rgb, 0.45));
            }
            Shape::Container => mesh.push_open_box(lo, hi, WALL, rgb),
            Shape::Button { .. } => {
                // The cap is the upper half of the box (tasks keep `travel` below it).
                let mid = lo[2] + self.size[2] / 2.0;
                mesh.push_box(lo, [hi[0], hi[1], mid], GREY.rgb);
                mesh.push_cylinder(c[0], c[1], mid, hi[2] - self.pressed, radius * 0.6, rgb);
            }
            Shape::Drawer => {
                let front = hi[0] - HANDLE_DEPTH;
                mesh.push_open_box(lo, [front - WALL, hi[1], hi[2] - 0.01], WALL, shade(rgb, 0.8));
                mesh.push_box([front - WALL, lo[1], lo[2]], [front, hi[1], hi[2]], rgb);
                let h = self.handle();
                // A vertical bar, so that the fingers (which close along y) close around it.
                mesh.push_box(
                    [front, h[1] - HANDLE_HALF_WIDTH, h[2] - 0.03],
                    [hi[0], h[1] + HANDLE_HALF_WIDTH, h[2] + 0.03],
                    GREY.rgb,
                );
            }
            Shape::Lid => {
                mesh.push_cylinder(c[0], c[1], lo[2], lo[2] + LID_THICKNESS, radius, rgb);
                mesh.push_cylinder(c[0], c[1], lo[2] + LID_THICKNESS, hi[2], KNOB_RADIUS, shade(rgb, 0.6));
            }
            Shape::Saucepan => {
                mesh.push_cylinder(c[0], c[1], lo[2], hi[2], radius, rgb);
                mesh.push_cylinder(c[0], c[1], hi[2], hi[2] + 0.001, radius * 0.88, shade(rgb, 0.4));
                let z = hi[2] - 0.02;
                mesh.push_box([c[0] - 0.012, hi[1], z - 0.008], [c[0] + 0.012, hi[1] + 0.11, z + 0.008], GREY.rgb);
            }
        }
    }
}

/// How far a drawer handle sticks out of the drawer front.
pub const HANDLE_DEPTH: f64 = 0.025;
pub const HANDLE_HALF_WIDTH: f64 = 0.008;
pub const LID_THICKNESS: f64 = 0.012;
pub const KNOB_RADIUS: f64 = 0.014;

fn half(v: Vec3) -> Vec3 {
    [v[0] / 2.0, v[1] / 2.0, v[2] / 2.0]
}

/// `rgb * factor`, rounded and clamped to a byte.
pub fn shade(rgb: [u8; 3], factor: f64) -> [u8; 3] {
    rgb.map(|c| (c as f64 * factor).round().clamp(0.0, 255.0) as u8)
}

/// Gripper geometry (RLBench's Panda hand as the prompts state it): 0.06 m along x,
/// 0.2 m along y, 0.09 m tall including 0.04 m fingers, fingers 0.08 m apart when open.
const FINGER: f64 = 0.04;
const HAND_HEIGHT: f64 = 0.09;
const OPEN_GAP: f64 = 0.04;

/// Appends the gripper with its tip (the point between the fingertips) at `tip`, a stub of
/// the arm above it, and a shadow on the table below it. `grip` is half the distance between
/// the fingers when closed (half the held object's width).
pub fn push_gripper(mesh: &mut Mesh, tip: Vec3, open: bool, grip: f64) {
    let [x, y, z] = tip;
    let gap = if open { OPEN_GAP } else { grip };
    let finger = shade(GREY.rgb, 0.5);
    for side in [-1.0, 1.0] {
        let inner = y + side * gap;
        let outer = inner + side * 0.015;
        mesh.push_box([x - 0.01, inner.min(outer), z], [x + 0.01, inner.max(outer), z + FINGER], finger);
    }
    mesh.push_box([x - 0.03, y - 0.1, z + FINGER], [x + 0.03, y + 0.1, z + HAND_HEIGHT], [225, 225, 228]);
    mesh.push_box([x - 0.03, y - 0.03, z + HAND_HEIGHT], [x + 0.03, y + 0.03, z + 0.7], SILVER.rgb);
    if z > TABLE_TOP + 0.002 {
        let s = TABLE_TOP + 0.0005;
        mesh.push_box([x - 0.03, y - 0.09, s - 0.0004], [x + 0.03, y + 0.09, s], [150, 116, 83]);
    }
}

/// What a grasp or a push does to an object when the expert reaches a waypoint.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// From now on the object follows the gripper tip along the axes set in `follow` (a
    /// drawer slides along x only), keeping its offset. `held` marks a grasp as opposed to a
    /// push.
    Attach { object: usize, follow: [bool; 3], held: bool },
    /// The object stops following; with `drop` it settles on the highest support below it.
    Detach { object: usize, drop: bool },
}

#[derive(Clone, Debug, PartialEq)]
struct Attachment {
    object: usize,
    offset: Vec3,
    follow: [bool; 3],
    held: bool,
}

/// The objects and their attachments to the gripper.
#[derive(Clone, Debug)]
pub struct World {
    pub objects: Vec<Object>,
    attached: Vec<Attachment>,
}

impl World {
    pub fn new(objects: Vec<Object>) -> Self {
        Self { objects, attached: Vec::new() }
    }

    /// Moves attached objects with the tip and lets buttons under the tip give way.
    pub fn follow(&mut self, tip: Vec3) {
        for a in &self.attached {
            let o = &mut self.objects[a.object];
            for (axis, p) in o.position.iter_mut().enumerate() {
                if a.follow[axis] {
                    *p = tip[axis] + a.offset[axis];
                }
            }
        }
        for o in &mut self.objects {
            if let Shape::Button { travel } = o.shape {
                let rest_top = o.top();
                o.pressed = if o.covers(tip[0], tip[1]) { (rest_top - tip[2]).clamp(0.0, travel) } else { 0.0 };
            }
        }
    }

    /// Applies a waypoint's events with the gripper tip at `tip`.
    pub fn apply(&mut self, event: &Event, tip: Vec3) {
        match *event {
            Event::Attach { object, follow, held } => {
                let offset = sub(self.objects[object].position, tip);
                self.attached.push(Attachment { object, offset, follow, held });
            }
            Event::Detach { object, drop } => {
                self.attached.retain(|a| a.object != object);
                if drop {
                    self.settle(object);
                }
            }
        }
    }

    /// Lowers an object onto the highest support under its centre (the table if none).
    fn settle(&mut self, index: usize) {
        let o = &self.objects[index];
        let (x, y, bottom) = (o.position[0], o.position[1], o.min()[2]);
        let floor = self
            .objects
            .iter()
            .enumerate()
            .filter(|&(j, s)| j != index && s.covers(x, y) && s.support_height() <= bottom + 1e-9)
            .map(|(_, s)| s.support_height())
            .fold(TABLE_TOP, f64::max);
        let o = &mut self.objects[index];
        o.position[2] = floor + o.size[2] / 2.0;
    }

    /// True while the gripper holds the object.
    pub fn is_held(&self, index: usize) -> bool {
        self.attached.iter().any(|a| a.object == index && a.held)
    }

    /// Half the finger gap the closed gripper shows: the held object's, or nearly shut.
    pub fn grip_half_width(&self) -> f64 {
        self.attached.iter().find(|a| a.held).map_or(0.004, |a| self.objects[a.object].grip_half_width())
    }

    /// The scene description of the current state.
    pub fn scene(&self) -> Vec<SceneObject> {
        self.objects.iter().enumerate().map(|(i, o)| o.scene(self.is_held(i))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn block(x: f64, y: f64, s: f64) -> Object {
        Object::on_table("b", Shape::Block, PALETTE[0], x, y, [s, s, s])
    }

    #[test]
    fn palette_names_are_unique() {
        let mut names: Vec<_> = PALETTE.iter().map(|c| c.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PALETTE.len());
    }

    #[test]
    fn a_released_block_lands_in_the_bin_below_it() {
        let bin = Object::on_table("bin", Shape::Container, GREY, 0.2, 0.0, [0.2, 0.2, 0.1]);
        let mut w = World::new(vec![bin, block(0.0, 0.0, 0.04)]);
        let grasp = [0.0, 0.0, TABLE_TOP + 0.02];
        w.apply(&Event::Attach { object: 1, follow: [true; 3], held: true }, grasp);
        assert!(w.is_held(1) && !w.is_held(0));
        let above_bin = [0.2, 0.0, TABLE_TOP + 0.3];
        w.follow(above_bin);
        assert_eq!(w.objects[1].position[0], 0.2);
        w.apply(&Event::Detach { object: 1, drop: true }, above_bin);
        assert!(!w.is_held(1));
        assert!((w.objects[1].min()[2] - (TABLE_TOP + WALL)).abs() < 1e-12);
        // A block released beside the bin falls to the table.
        w.apply(&Event::Attach { object: 1, follow: [true; 3], held: true }, w.objects[1].position);
        w.follow([0.5, 0.3, 1.0]);
        w.apply(&Event::Detach { object: 1, drop: true }, [0.5, 0.3, 1.0]);
        assert!((w.objects[1].min()[2] - TABLE_TOP).abs() < 1e-12);
    }

    #[test]
    fn a_drawer_follows_along_x_only() {
        let drawer = Object::on_table("d", Shape::Drawer, PALETTE[1], 0.0, 0.0, [0.2, 0.2, 0.08]);
        let mut w = World::new(vec![drawer.clone()]);
        let h = drawer.handle();
        w.apply(&Event::Attach { object: 0, follow: [true, false, false], held: true }, h);
        w.follow(add(h, [0.15, 0.05, 0.05]));
        assert!((w.objects[0].position[0] - 0.15).abs() < 1e-12);
        assert_eq!(w.objects[0].position[1..], drawer.position[1..]);
    }

    proptest! {
        #[test]
        fn buttons_press_only_under_the_tip(dz in -0.05f64..0.05, dx in -0.2f64..0.2) {
            let travel = 0.012;
            let b = Object::on_table("b", Shape::Button { travel }, PALETTE[0], 0.0, 0.0, [0.06, 0.06, 0.03]);
            let top = b.top();
            let mut w = World::new(vec![b]);
            w.follow([dx, 0.0, top + dz]);
            let p = w.objects[0].pressed;
            prop_assert!((0.0..=travel).contains(&p));
            if dx.abs() > 0.03 || dz >= 0.0 { prop_assert_eq!(p, 0.0); }
            else { prop_assert!((p - (-dz).min(travel)).abs() < 1e-12); }
        }

        #[test]
        fn settled_objects_rest_on_a_surface(x in -0.3f64..0.3, y in -0.3f64..0.3, z in 0.9f64..1.2) {
            let bin = Object::on_table("bin", Shape::Container, GREY, 0.0, 0.0, [0.2, 0.2, 0.1]);
            let plate = Object::on_table("p", Shape::Plate, GREY, 0.2, 0.2, [0.1, 0.1, 0.01]);
            let mut w = World::new(vec![bin, plate, block(x, y, 0.04)]);
            w.apply(&Event::Attach { object: 2, follow: [true; 3], held: true }, [x, y, TABLE_TOP]);
            w.follow([x, y, z]);
            w.apply(&Event::Detach { object: 2, drop: true }, [x, y, z]);
            let bottom = w.objects[2].min()[2];
            let surfaces = [TABLE_TOP, TABLE_TOP + WALL, TABLE_TOP + 0.01];
            prop_assert!(surfaces.iter().any(|s| (s - bottom).abs() < 1e-9));
        }
    }
}
