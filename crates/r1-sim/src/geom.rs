//! Three-vectors and the triangle meshes the renderer draws.
//!
//! Only `+ - * /` and `sqrt` are used anywhere on the rendering path: they are correctly
//! rounded by IEEE 754 on every platform, whereas `sin`, `cos` or `tan` come from the
//! platform's maths library and may differ in the last bit, which would break the promise of
//! byte-identical images for a seed.

/// A point or direction in the world frame (metres).
pub type Vec3 = [f64; 3];

pub fn add(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

pub fn sub(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

pub fn scale(a: Vec3, s: f64) -> Vec3 {
    [a[0] * s, a[1] * s, a[2] * s]
}

pub fn dot(a: Vec3, b: Vec3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

pub fn cross(a: Vec3, b: Vec3) -> Vec3 {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

pub fn norm(a: Vec3) -> f64 {
    dot(a, a).sqrt()
}

/// `a / |a|`; the zero vector stays zero.
pub fn normalize(a: Vec3) -> Vec3 {
    let n = norm(a);
    if n > 0.0 { scale(a, 1.0 / n) } else { a }
}

/// `a + t (b - a)`.
pub fn lerp(a: Vec3, b: Vec3, t: f64) -> Vec3 {
    add(a, scale(sub(b, a), t))
}

/// One flat-shaded triangle: corners, outward unit normal, base colour.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tri {
    pub v: [Vec3; 3],
    pub normal: Vec3,
    pub rgb: [u8; 3],
}

/// The corners of a regular 12-gon of unit radius, counter-clockwise from +x, written out
/// so that no trigonometric function is evaluated (see the module docs). `S = sqrt(3) / 2`.
const S: f64 = 0.866_025_403_784_438_6;
const UNIT_12GON: [[f64; 2]; 12] = [
    [1.0, 0.0],
    [S, 0.5],
    [0.5, S],
    [0.0, 1.0],
    [-0.5, S],
    [-S, 0.5],
    [-1.0, 0.0],
    [-S, -0.5],
    [-0.5, -S],
    [0.0, -1.0],
    [0.5, -S],
    [S, -0.5],
];

/// A triangle soup, built from closed solids so that back faces can be culled.
#[derive(Clone, Debug, Default)]
pub struct Mesh {
    pub tris: Vec<Tri>,
}

impl Mesh {
    /// An axis-aligned box between corners `min` and `max` (12 triangles).
    pub fn push_box(&mut self, min: Vec3, max: Vec3, rgb: [u8; 3]) {
        let c = |i: usize| {
            [
                if i & 1 == 0 { min[0] } else { max[0] },
                if i & 2 == 0 { min[1] } else { max[1] },
                if i & 4 == 0 { min[2] } else { max[2] },
            ]
        };
        // Each face: its outward normal and four corner indices (bit 0: x, bit 1: y, bit 2: z).
        const FACES: [([f64; 3], [usize; 4]); 6] = [
            ([-1.0, 0.0, 0.0], [0, 2, 6, 4]),
            ([1.0, 0.0, 0.0], [1, 3, 7, 5]),
            ([0.0, -1.0, 0.0], [0, 1, 5, 4]),
            ([0.0, 1.0, 0.0], [2, 3, 7, 6]),
            ([0.0, 0.0, -1.0], [0, 1, 3, 2]),
            ([0.0, 0.0, 1.0], [4, 5, 7, 6]),
        ];
        for (normal, q) in FACES {
            self.tris.push(Tri { v: [c(q[0]), c(q[1]), c(q[2])], normal, rgb });
            self.tris.push(Tri { v: [c(q[0]), c(q[2]), c(q[3])], normal, rgb });
        }
    }

    /// A box given by its centre and extent.
    pub fn push_centred_box(&mut self, centre: Vec3, size: Vec3, rgb: [u8; 3]) {
        let h = scale(size, 0.5);
        self.push_box(sub(centre, h), add(centre, h), rgb);
    }

    /// A vertical 12-sided prism standing for a cylinder of `radius` around the vertical
    /// axis through `(x, y)`, from height `z0` to `z1` (44 triangles).
    pub fn push_cylinder(&mut self, x: f64, y: f64, z0: f64, z1: f64, radius: f64, rgb: [u8; 3]) {
        let at = |k: usize, z: f64| [x + radius * UNIT_12GON[k % 12][0], y + radius * UNIT_12GON[k % 12][1], z];
        for k in 0..12 {
            let (a, b) = (UNIT_12GON[k], UNIT_12GON[(k + 1) % 12]);
            let normal = normalize([a[0] + b[0], a[1] + b[1], 0.0]);
            self.tris.push(Tri { v: [at(k, z0), at(k + 1, z0), at(k + 1, z1)], normal, rgb });
            self.tris.push(Tri { v: [at(k, z0), at(k + 1, z1), at(k, z1)], normal, rgb });
        }
        for k in 1..11 {
            self.tris.push(Tri { v: [at(0, z1), at(k, z1), at(k + 1, z1)], normal: [0.0, 0.0, 1.0], rgb });
            self.tris.push(Tri { v: [at(0, z0), at(k + 1, z0), at(k, z0)], normal: [0.0, 0.0, -1.0], rgb });
        }
    }

    /// An open-topped box (a bin, a drawer tray): a floor and four walls of thickness `t`
    /// inside the bounds `min`..`max`.
    pub fn push_open_box(&mut self, min: Vec3, max: Vec3, t: f64, rgb: [u8; 3]) {
        self.push_box(min, [max[0], max[1], min[2] + t], rgb);
        let z0 = min[2] + t;
        self.push_box([min[0], min[1], z0], [min[0] + t, max[1], max[2]], rgb);
        self.push_box([max[0] - t, min[1], z0], [max[0], max[1], max[2]], rgb);
        self.push_box([min[0] + t, min[1], z0], [max[0] - t, min[1] + t, max[2]], rgb);
        self.push_box([min[0] + t, max[1] - t, z0], [max[0] - t, max[1], max[2]], rgb);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_12gon_is_on_the_unit_circle() {
        for [x, y] in UNIT_12GON {
            assert!((x * x + y * y - 1.0).abs() < 1e-15);
        }
    }

    /// Every face normal of a closed convex solid points away from its centroid.
    fn normals_point_outward(mesh: &Mesh, centre: Vec3) -> bool {
        mesh.tris.iter().all(|t| {
            let c = scale(add(add(t.v[0], t.v[1]), t.v[2]), 1.0 / 3.0);
            dot(t.normal, sub(c, centre)) > 0.0 && (norm(t.normal) - 1.0).abs() < 1e-12
        })
    }

    proptest! {
        #[test]
        fn box_and_cylinder_normals_are_outward_units(
            c in proptest::array::uniform3(-1.0f64..1.0),
            s in proptest::array::uniform3(0.01f64..0.5),
        ) {
            let mut m = Mesh::default();
            m.push_centred_box(c, s, [1, 2, 3]);
            prop_assert_eq!(m.tris.len(), 12);
            prop_assert!(normals_point_outward(&m, c));
            let mut m = Mesh::default();
            m.push_cylinder(c[0], c[1], c[2] - s[2], c[2] + s[2], s[0], [1, 2, 3]);
            prop_assert_eq!(m.tris.len(), 44);
            prop_assert!(normals_point_outward(&m, c));
        }

        #[test]
        fn normalize_gives_unit_vectors(a in proptest::array::uniform3(-10.0f64..10.0)) {
            prop_assume!(norm(a) > 1e-6);
            prop_assert!((norm(normalize(a)) - 1.0).abs() < 1e-12);
            prop_assert!(norm(cross(a, normalize(a))) < 1e-9);
        }
    }
}
