//! The software rasteriser: a pinhole camera, a z-buffer and flat Lambert shading.
//!
//! One frame is drawn on one thread in a fixed triangle order with a strict depth test, and
//! only correctly rounded arithmetic is used (see [`crate::geom`]), so the same scene gives
//! the same bytes on every machine.

use image::ImageEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use r1_data::Camera;

use crate::geom::{Mesh, Tri, Vec3, cross, dot, normalize, sub};
use crate::world::{BROWN, GREY, TABLE_TOP, shade};

/// The camera name episodes use (RLBench's `front_rgb` stream).
pub const FRONT_CAMERA: &str = "front";

/// Focal length in units of the image width: `fx = 1.35 w`, a horizontal field of view of
/// about 41 degrees, framing the table the way RLBench's front camera does.
const FOCAL_PER_WIDTH: f64 = 1.35;
/// Triangles with a corner closer than this (metres along the view axis) are skipped; the
/// scene is built so that none is.
const NEAR: f64 = 0.05;
const SKY: [u8; 3] = [62, 66, 78];
const FLOOR: [u8; 3] = [98, 98, 104];
const TABLE: [u8; 3] = [176, 137, 98];
/// Direction towards the light (above, slightly in front and to the right).
const LIGHT: Vec3 = [0.4, 0.25, 1.0];
const AMBIENT: f64 = 0.45;

/// A pinhole camera looking from `eye` at `target` with the world's z axis up, in the
/// OpenCV convention r1-data documents (x right, y down, z forward).
#[derive(Clone, Debug, PartialEq)]
pub struct View {
    pub eye: Vec3,
    pub right: Vec3,
    pub down: Vec3,
    pub forward: Vec3,
    pub focal: f64,
    pub width: u32,
    pub height: u32,
}

impl View {
    pub fn look_at(eye: Vec3, target: Vec3, width: u32, height: u32) -> Self {
        let forward = normalize(sub(target, eye));
        let right = normalize(cross(forward, [0.0, 0.0, 1.0]));
        let down = cross(forward, right);
        Self { eye, right, down, forward, focal: FOCAL_PER_WIDTH * width as f64, width, height }
    }

    /// RLBench's front camera: in front of the table, above it, looking back and down.
    pub fn front(size: u32) -> Self {
        Self::look_at([1.25, 0.0, 1.55], [0.15, 0.0, 0.85], size, size)
    }

    /// The principal point: the image centre.
    fn centre(&self) -> [f64; 2] {
        [self.width as f64 / 2.0, self.height as f64 / 2.0]
    }

    /// The calibrated camera record stored with each episode.
    pub fn camera(&self, name: &str) -> Camera {
        let [cx, cy] = self.centre();
        let (r, d, f, e) = (self.right, self.down, self.forward, self.eye);
        Camera {
            name: name.into(),
            width: self.width,
            height: self.height,
            intrinsics: Some([[self.focal, 0.0, cx], [0.0, self.focal, cy], [0.0, 0.0, 1.0]]),
            extrinsics: Some([
                [r[0], d[0], f[0], e[0]],
                [r[1], d[1], f[1], e[1]],
                [r[2], d[2], f[2], e[2]],
                [0.0, 0.0, 0.0, 1.0],
            ]),
        }
    }

    /// Camera-frame coordinates of a world point.
    fn to_camera(&self, p: Vec3) -> Vec3 {
        let d = sub(p, self.eye);
        [dot(self.right, d), dot(self.down, d), dot(self.forward, d)]
    }
}

/// An RGB image with its inverse-depth buffer (`1 / z`, zero where nothing is drawn).
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    /// Row-major RGB bytes, `3 * width * height`.
    pub rgb: Vec<u8>,
    inv_depth: Vec<f64>,
}

impl Frame {
    fn blank(width: u32, height: u32, sky: [u8; 3]) -> Self {
        let n = width as usize * height as usize;
        Self { width, height, rgb: sky.repeat(n), inv_depth: vec![0.0; n] }
    }

    /// The colour at pixel `(u, v)`.
    pub fn pixel(&self, u: u32, v: u32) -> [u8; 3] {
        let i = 3 * (v as usize * self.width as usize + u as usize);
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    /// PNG bytes (zlib level 6, adaptive filters: the frames are mostly flat colour and
    /// compress to a few kilobytes).
    pub fn png(&self) -> Result<Vec<u8>, image::ImageError> {
        let mut out = Vec::new();
        PngEncoder::new_with_quality(&mut out, CompressionType::Default, FilterType::Adaptive).write_image(
            &self.rgb,
            self.width,
            self.height,
            image::ExtendedColorType::Rgb8,
        )?;
        Ok(out)
    }

    /// Draws triangles in order; a pixel takes the first triangle nearest to the camera.
    pub fn draw(&mut self, view: &View, tris: &[Tri]) {
        let light = normalize(LIGHT);
        let [cx, cy] = view.centre();
        let (w, h) = (self.width as usize, self.height as usize);
        for t in tris {
            // Back faces of closed solids are hidden anyway: skip them early.
            if dot(t.normal, sub(t.v[0], view.eye)) >= 0.0 {
                continue;
            }
            let cam = t.v.map(|p| view.to_camera(p));
            if cam.iter().any(|c| c[2] < NEAR) {
                continue;
            }
            // Screen position (u, v) and 1/z of each corner; 1/z is affine in screen space,
            // so interpolating it with screen-space barycentrics is perspective-correct.
            let s = cam.map(|c| [view.focal * c[0] / c[2] + cx, view.focal * c[1] / c[2] + cy, 1.0 / c[2]]);
            let area = edge(s[0], s[1], s[2]);
            if area == 0.0 {
                continue;
            }
            let lambert = dot(t.normal, light).max(0.0);
            let rgb = shade(t.rgb, AMBIENT + (1.0 - AMBIENT) * lambert);
            let lo = |a: usize| s.iter().map(|p| p[a]).fold(f64::INFINITY, f64::min).floor().max(0.0) as usize;
            let hi = |a: usize, n: usize| {
                (s.iter().map(|p| p[a]).fold(f64::NEG_INFINITY, f64::max).ceil().max(0.0) as usize).min(n)
            };
            for py in lo(1)..hi(1, h) {
                for px in lo(0)..hi(0, w) {
                    let p = [px as f64 + 0.5, py as f64 + 0.5, 0.0];
                    let b = [edge(s[1], s[2], p) / area, edge(s[2], s[0], p) / area, edge(s[0], s[1], p) / area];
                    if b.iter().any(|&x| x < 0.0) {
                        continue;
                    }
                    let inv_z = b[0] * s[0][2] + b[1] * s[1][2] + b[2] * s[2][2];
                    let i = py * w + px;
                    if inv_z > self.inv_depth[i] {
                        self.inv_depth[i] = inv_z;
                        self.rgb[3 * i..3 * i + 3].copy_from_slice(&rgb);
                    }
                }
            }
        }
    }
}

/// Twice the signed area of the screen triangle `(a, b, p)`.
fn edge(a: [f64; 3], b: [f64; 3], p: [f64; 3]) -> f64 {
    (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])
}

/// The static set: floor, table top and legs.
pub fn stage() -> Mesh {
    let mut m = Mesh::default();
    // The floor stops short of the camera (at x = 1.3) so that all of it lies in front.
    m.push_box([-3.0, -3.0, -0.02], [1.2, 3.0, 0.0], FLOOR);
    m.push_box([-0.3, -0.65, TABLE_TOP - 0.04], [0.8, 0.65, TABLE_TOP], TABLE);
    for (x, y) in [(-0.25, -0.6), (-0.25, 0.55), (0.75, -0.6), (0.75, 0.55)] {
        m.push_box([x - 0.025, y, 0.0], [x + 0.025, y + 0.05, TABLE_TOP - 0.04], BROWN.rgb);
    }
    // A back wall closes the view behind the table.
    m.push_box([-1.6, -3.0, 0.0], [-1.5, 3.0, 2.5], shade(GREY.rgb, 0.8));
    m
}

/// Renders frames for one camera: the static set is drawn once and copied for each frame.
#[derive(Clone, Debug)]
pub struct Renderer {
    view: View,
    background: Frame,
}

impl Renderer {
    pub fn new(view: View) -> Self {
        let mut background = Frame::blank(view.width, view.height, SKY);
        background.draw(&view, &stage().tris);
        Self { view, background }
    }

    pub fn view(&self) -> &View {
        &self.view
    }

    /// The stage with `mesh` drawn over it.
    pub fn render(&self, mesh: &Mesh) -> Frame {
        let mut frame = self.background.clone();
        frame.draw(&self.view, &mesh.tris);
        frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::PALETTE;
    use proptest::prelude::*;

    #[test]
    fn front_camera_follows_the_documented_convention() {
        let cam = View::front(224).camera(FRONT_CAMERA);
        // The table centre is in the lower half of the image, the image centre column.
        let [u, v] = cam.project([0.25, 0.0, TABLE_TOP]).unwrap();
        assert!((u - 112.0).abs() < 1e-9 && v > 112.0 && v < 224.0, "{u} {v}");
        // World +y (right) is image right; world +z (up) is image up.
        let right = cam.project([0.25, 0.2, TABLE_TOP]).unwrap();
        let up = cam.project([0.25, 0.0, TABLE_TOP + 0.2]).unwrap();
        assert!(right[0] > u + 10.0 && up[1] < v - 10.0);
        // The corners of the region where tasks put objects, and the gripper's start, are in
        // view.
        for p in [
            [0.0, -0.3, TABLE_TOP],
            [0.0, 0.3, TABLE_TOP],
            [0.45, -0.3, TABLE_TOP],
            [0.45, 0.3, TABLE_TOP],
            [0.3, 0.0, 1.32],
        ] {
            let [u, v] = cam.project(p).unwrap();
            assert!((0.0..224.0).contains(&u) && (0.0..224.0).contains(&v), "{p:?} -> {u} {v}");
        }
    }

    #[test]
    fn projected_points_land_on_the_objects_drawn_there() {
        // A few cubes on the table: the pixel under each projected centre of a top face has
        // the cube's colour as shaded from above.
        let view = View::front(224);
        let cam = view.camera(FRONT_CAMERA);
        let renderer = Renderer::new(view);
        let cubes = [([0.0, -0.3], 0), ([0.3, 0.2], 1), ([0.5, -0.1], 2), ([0.1, 0.35], 3)];
        let mut mesh = Mesh::default();
        for ([x, y], c) in cubes {
            mesh.push_centred_box([x, y, TABLE_TOP + 0.03], [0.06; 3], PALETTE[c].rgb);
        }
        let frame = renderer.render(&mesh);
        let lit = AMBIENT + (1.0 - AMBIENT) * normalize(LIGHT)[2];
        for ([x, y], c) in cubes {
            let [u, v] = cam.project([x, y, TABLE_TOP + 0.06]).unwrap();
            assert_eq!(frame.pixel(u as u32, v as u32), shade(PALETTE[c].rgb, lit), "cube {c} at {u} {v}");
        }
        // And the table shows between them.
        let [u, v] = cam.project([0.25, 0.0, TABLE_TOP]).unwrap();
        assert_eq!(frame.pixel(u as u32, v as u32), shade(TABLE, lit));
    }

    #[test]
    fn nearer_triangles_win() {
        let view = View::front(64);
        let cam = view.camera(FRONT_CAMERA);
        let renderer = Renderer::new(view);
        let (far, near) = (PALETTE[0].rgb, PALETTE[2].rgb);
        let centre = [0.2, 0.0, 1.0];
        // Drawn in both orders, the box nearer the camera (larger x) covers the other.
        for order in [[0, 1], [1, 0]] {
            let mut mesh = Mesh::default();
            for k in order {
                let (dx, rgb) = if k == 0 { (0.0, far) } else { (0.1, near) };
                mesh.push_centred_box([centre[0] + dx, 0.0, 1.0], [0.05, 0.1, 0.1], rgb);
            }
            let frame = renderer.render(&mesh);
            let [u, v] = cam.project([centre[0] + 0.125, 0.0, 1.0]).unwrap();
            let px = frame.pixel(u as u32, v as u32);
            assert!(px != shade(far, 1.0) && px[2] > px[0], "{px:?}");
        }
    }

    proptest! {
        #[test]
        fn projection_and_unprojection_agree(x in -0.3f64..0.7, y in -0.5f64..0.5, z in 0.75f64..1.6) {
            // The stored camera and the renderer's view use the same transform.
            let view = View::front(224);
            let cam = view.camera(FRONT_CAMERA);
            let [u, v] = cam.project([x, y, z]).unwrap();
            let c = view.to_camera([x, y, z]);
            prop_assert!((u - (view.focal * c[0] / c[2] + 112.0)).abs() < 1e-9);
            prop_assert!((v - (view.focal * c[1] / c[2] + 112.0)).abs() < 1e-9);
        }
    }
}
