//! Every kernel variant the machine runs, on odd shapes, against its scalar twin and against an f64
//! dot product of the exactly dequantized weights; the pool against single-threaded calls; the
//! scale folding on every E8M0 byte; one test per error variant.

use ue8_formats::{Element, E2M1, E2M3, E3M2, E4M3, E5M2, E8M0};

use super::*;

/// Unit roundoff of f32 (round to nearest): 2^-24.
pub(super) const F32_UNIT_ROUNDOFF: f64 = 1.0 / (1u64 << 24) as f64;
/// Roundings beyond one per element that a term of the dot product can go through in any variant:
/// the block-scale multiply, acc0 + acc1, the running block total, three levels of horizontal sum,
/// the tail sum and the final add (avx2.rs), or the scale multiply in the reference. 8 covers all.
const EXTRA_ROUNDINGS: usize = 8;

/// Higham's bound for a sum of k products evaluated in f32 in any order (with or without FMA):
/// |computed - exact| <= gamma(k + extra) * sum |w_i x_i|, gamma(j) = j u / (1 - j u).
fn f32_dot_error_bound(k: usize, abs_sum: f64) -> f64 {
    let j = (k + EXTRA_ROUNDINGS) as f64 * F32_UNIT_ROUNDOFF;
    j / (1.0 - j) * abs_sum
}

/// xorshift64*: deterministic test data without a dependency.
pub(super) struct Rng(pub(super) u64);
impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub(super) fn f32_in(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next() >> 40) as f32 / (1u64 << 24) as f32)
    }
}

/// A test matrix: the stored bytes plus the exact f64 value of every element (computed from the
/// codes with ue8_formats, never from the packed bytes, so packing is checked too).
pub(super) struct Case {
    pub(super) label: String,
    pub(super) n: usize,
    pub(super) k: usize,
    pub(super) bytes: Vec<u8>,
    pub(super) f32_scales: Vec<f32>,
    pub(super) u8_scales: Vec<u8>,
    pub(super) exact: Vec<f64>,
    pub(super) kind: Kind,
}

#[derive(Clone, Copy, Debug)]
pub(super) enum Kind {
    F32,
    Bf16,
    F16,
    E4m3Tiles,
    Mx(MxElement),
}

const KINDS: [Kind; 9] = [
    Kind::F32,
    Kind::Bf16,
    Kind::F16,
    Kind::E4m3Tiles,
    Kind::Mx(MxElement::E4M3),
    Kind::Mx(MxElement::E5M2),
    Kind::Mx(MxElement::E3M2),
    Kind::Mx(MxElement::E2M3),
    Kind::Mx(MxElement::E2M1),
];

fn elem_value(elem: MxElement, code: u8) -> f64 {
    f64::from(match elem {
        MxElement::E4M3 => E4M3::from_bits(code).to_f32(),
        MxElement::E5M2 => E5M2::from_bits(code).to_f32(),
        MxElement::E3M2 => E3M2::from_bits(code).to_f32(),
        MxElement::E2M3 => E2M3::from_bits(code).to_f32(),
        MxElement::E2M1 => E2M1::from_bits(code).to_f32(),
    })
}

/// A random finite code of the element type (NaN/inf codes are the loader's job).
fn random_code(rng: &mut Rng, elem: MxElement) -> u8 {
    loop {
        let c = match elem {
            MxElement::E4M3 | MxElement::E5M2 => rng.below(256) as u8,
            MxElement::E3M2 | MxElement::E2M3 => rng.below(64) as u8,
            MxElement::E2M1 => rng.below(16) as u8,
        };
        if elem_value(elem, c).is_finite() {
            return c;
        }
    }
}

/// Packs a row of 6-bit codes as one little-endian bit stream (docs/layouts.md).
fn pack_fp6(codes: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + codes.len() * 3 / 4, 0);
    for (i, &c) in codes.iter().enumerate() {
        let bit = 6 * i;
        let v = u16::from(c & 0x3F) << (bit % 8);
        out[start + bit / 8] |= v as u8;
        if bit % 8 > 2 {
            out[start + bit / 8 + 1] |= (v >> 8) as u8;
        }
    }
}

pub(super) fn make_case(kind: Kind, n: usize, k: usize, rng: &mut Rng) -> Case {
    let mut bytes = Vec::new();
    let mut exact = vec![0f64; n * k];
    let mut f32_scales = Vec::new();
    let mut u8_scales = Vec::new();
    match kind {
        Kind::F32 | Kind::Bf16 | Kind::F16 => {
            for e in exact.iter_mut() {
                let v = rng.f32_in(-2.0, 2.0);
                match kind {
                    Kind::F32 => {
                        bytes.extend_from_slice(&v.to_le_bytes());
                        *e = f64::from(v);
                    }
                    Kind::Bf16 => {
                        let h = half::bf16::from_f32(v);
                        bytes.extend_from_slice(&h.to_bits().to_le_bytes());
                        *e = f64::from(h.to_f32());
                    }
                    _ => {
                        let h = half::f16::from_f32(v);
                        bytes.extend_from_slice(&h.to_bits().to_le_bytes());
                        *e = f64::from(h.to_f32());
                    }
                }
            }
        }
        Kind::E4m3Tiles => {
            let (tr, tc) = (n.div_ceil(E4M3_TILE), k.div_ceil(E4M3_TILE));
            // Mix of powers of two (UE8M0 checkpoints) and arbitrary f32 scales (DeepSeek-V3).
            f32_scales = (0..tr * tc)
                .map(|i| {
                    if i % 2 == 0 {
                        2f32.powi(rng.below(12) as i32 - 14)
                    } else {
                        rng.f32_in(1e-4, 1e-2)
                    }
                })
                .collect();
            for r in 0..n {
                for c in 0..k {
                    let q = random_code(rng, MxElement::E4M3);
                    bytes.push(q);
                    let s = f32_scales[(r / E4M3_TILE) * tc + c / E4M3_TILE];
                    exact[r * k + c] = elem_value(MxElement::E4M3, q) * f64::from(s);
                }
            }
        }
        Kind::Mx(elem) => {
            let blocks = k.div_ceil(MX_BLOCK);
            let kp = blocks * MX_BLOCK;
            for r in 0..n {
                let row_scales: Vec<u8> = (0..blocks).map(|_| 112 + rng.below(24) as u8).collect();
                // Padding columns get random codes: the layout writes zeros there, but no kernel
                // may read them into a product.
                let codes: Vec<u8> = (0..kp).map(|_| random_code(rng, elem)).collect();
                for c in 0..k {
                    let s = E8M0::from_bits(row_scales[c / MX_BLOCK]).to_f32();
                    exact[r * k + c] = elem_value(elem, codes[c]) * f64::from(s);
                }
                match elem {
                    MxElement::E4M3 | MxElement::E5M2 => bytes.extend_from_slice(&codes[..k]),
                    MxElement::E3M2 | MxElement::E2M3 => pack_fp6(&codes, &mut bytes),
                    MxElement::E2M1 => {
                        bytes.extend(codes.chunks_exact(2).map(|p| p[0] | (p[1] << 4)))
                    }
                }
                u8_scales.extend_from_slice(&row_scales);
            }
        }
    }
    Case {
        label: format!("{kind:?} n={n} k={k}"),
        n,
        k,
        bytes,
        f32_scales,
        u8_scales,
        exact,
        kind,
    }
}

impl Case {
    pub(super) fn matrix(&self) -> WeightMatrix<'_> {
        let data = match self.kind {
            Kind::F32 => WeightData::F32(&self.bytes),
            Kind::Bf16 => WeightData::Bf16(&self.bytes),
            Kind::F16 => WeightData::F16(&self.bytes),
            Kind::E4m3Tiles => WeightData::E4m3Tiles {
                q: &self.bytes,
                scales: &self.f32_scales,
            },
            Kind::Mx(elem) => WeightData::Mx {
                elem,
                data: &self.bytes,
                scales: &self.u8_scales,
            },
        };
        match WeightMatrix::new(self.n, self.k, data) {
            Ok(w) => w,
            Err(e) => panic!("{}: {e}", self.label),
        }
    }
}

/// The named kernel for a case's format (gemm; gemv when m == 1), or its `_ref` twin.
fn named(kind: Kind, m: usize, reference: bool) -> NamedKernel {
    macro_rules! pick {
        ($gv:ident, $gm:ident, $gvr:ident, $gmr:ident) => {
            match (m == 1, reference) {
                (true, false) => NamedKernel::Gemv($gv),
                (false, false) => NamedKernel::Gemm($gm),
                (true, true) => NamedKernel::Gemv($gvr),
                (false, true) => NamedKernel::Gemm($gmr),
            }
        };
    }
    match kind {
        Kind::F32 => pick!(
            gemv_f32_f32,
            gemm_f32_f32,
            gemv_f32_f32_ref,
            gemm_f32_f32_ref
        ),
        Kind::Bf16 => pick!(
            gemv_bf16_f32,
            gemm_bf16_f32,
            gemv_bf16_f32_ref,
            gemm_bf16_f32_ref
        ),
        Kind::F16 => pick!(
            gemv_f16_f32,
            gemm_f16_f32,
            gemv_f16_f32_ref,
            gemm_f16_f32_ref
        ),
        Kind::E4m3Tiles => pick!(
            gemv_e4m3_f32,
            gemm_e4m3_f32,
            gemv_e4m3_f32_ref,
            gemm_e4m3_f32_ref
        ),
        Kind::Mx(MxElement::E2M1) => {
            pick!(
                gemv_mxfp4_f32,
                gemm_mxfp4_f32,
                gemv_mxfp4_f32_ref,
                gemm_mxfp4_f32_ref
            )
        }
        Kind::Mx(MxElement::E4M3 | MxElement::E5M2) => {
            pick!(
                gemv_mxfp8_f32,
                gemm_mxfp8_f32,
                gemv_mxfp8_f32_ref,
                gemm_mxfp8_f32_ref
            )
        }
        Kind::Mx(MxElement::E3M2 | MxElement::E2M3) => {
            pick!(
                gemv_mxfp6_f32,
                gemm_mxfp6_f32,
                gemv_mxfp6_f32_ref,
                gemm_mxfp6_f32_ref
            )
        }
    }
}

type GemvFn = fn(&WeightMatrix, &[f32], Range<usize>, &mut [f32]) -> Result<(), KernelError>;
type GemmFn = fn(&WeightMatrix, &[f32], usize, Range<usize>, &mut [f32]) -> Result<(), KernelError>;
enum NamedKernel {
    Gemv(GemvFn),
    Gemm(GemmFn),
}

fn call_named(
    f: NamedKernel,
    w: &WeightMatrix,
    x: &[f32],
    m: usize,
    y: &mut [f32],
) -> Result<(), KernelError> {
    match f {
        NamedKernel::Gemv(g) => g(w, x, 0..w.n(), y),
        NamedKernel::Gemm(g) => g(w, x, m, 0..w.n(), y),
    }
}

/// Checks `y` against the f64 dot products of the exact weights, within the f32 bound.
fn check_against_exact(case: &Case, x: &[f32], m: usize, y: &[f32], what: &str) {
    let (n, k) = (case.n, case.k);
    for t in 0..m {
        for r in 0..n {
            let (mut dot, mut abs) = (0f64, 0f64);
            for c in 0..k {
                let p = case.exact[r * k + c] * f64::from(x[t * k + c]);
                dot += p;
                abs += p.abs();
            }
            let got = f64::from(y[t * n + r]);
            let bound = f32_dot_error_bound(k, abs);
            assert!(
                (got - dot).abs() <= bound,
                "{what} {}: m={m} token {t} row {r}: got {got}, exact {dot}, bound {bound}",
                case.label
            );
        }
    }
}

#[test]
fn every_kernel_variant_matches_its_twin_and_the_exact_dot_on_odd_shapes() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let isas = Isa::supported();
    for kind in KINDS {
        for n in [0usize, 1, 31, 33, 127, 128, 129, 1000] {
            // Odd k: vector groups, scalar tails, partial MX blocks and partial 128-tiles.
            for k in [1usize, 17, 33, 129, 301] {
                let case = make_case(kind, n, k, &mut rng);
                let w = case.matrix();
                // m >= 8 takes the decoded-panel path (panel.rs); 13 and 40 leave token tails for
                // both microkernels (3 and 6 tokens a call).
                for m in [1usize, 2, 3, 5, 8, 13, 40] {
                    // Large n only with m = 1 and 8 keeps the test well under a second.
                    if n == 1000 && !(m == 1 || m == 8) {
                        continue;
                    }
                    let x: Vec<f32> = (0..m * k).map(|_| rng.f32_in(-1.0, 1.0)).collect();
                    let mut y_ref = vec![f32::NAN; m * n];
                    call_named(named(kind, m, true), &w, &x, m, &mut y_ref)
                        .unwrap_or_else(|e| panic!("{}: {e}", case.label));
                    check_against_exact(&case, &x, m, &y_ref, "ref");
                    let mut y = vec![f32::NAN; m * n];
                    call_named(named(kind, m, false), &w, &x, m, &mut y)
                        .unwrap_or_else(|e| panic!("{}: {e}", case.label));
                    check_against_exact(&case, &x, m, &y, "named");
                    for &isa in &isas {
                        let mut y = vec![f32::NAN; m * n];
                        matmul_rows_with(isa, &w, &x, m, 0..n, &mut y)
                            .unwrap_or_else(|e| panic!("{}: {e}", case.label));
                        check_against_exact(&case, &x, m, &y, isa.name());
                        if isa == Isa::Scalar {
                            // The scalar variant is the twin itself.
                            let same = y
                                .iter()
                                .zip(&y_ref)
                                .all(|(a, b)| a.to_bits() == b.to_bits());
                            assert!(same, "scalar variant differs from *_ref: {}", case.label);
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn panel_path_chunks_long_rows_and_matches_the_exact_dot() {
    // k past one 512-column panel chunk (and not a multiple of 16) exercises the chunk accumulation
    // and the zero-padded x copy; n = 37 leaves a partial row quad and a partial 16-row panel.
    let mut rng = Rng(0xC0FF_EE00);
    for kind in KINDS {
        for (n, k) in [(37usize, 1100usize), (16, 1024), (5, 1541)] {
            let case = make_case(kind, n, k, &mut rng);
            let w = case.matrix();
            for m in [8usize, 9, 19] {
                let x: Vec<f32> = (0..m * k).map(|_| rng.f32_in(-1.0, 1.0)).collect();
                for &isa in &Isa::supported() {
                    let mut y = vec![f32::NAN; m * n];
                    matmul_rows_with(isa, &w, &x, m, 0..n, &mut y)
                        .unwrap_or_else(|e| panic!("{}: {e}", case.label));
                    check_against_exact(&case, &x, m, &y, isa.name());
                }
            }
        }
    }
}

#[test]
fn pool_results_equal_single_thread_results_bit_for_bit() {
    let mut rng = Rng(7);
    for threads in [1usize, 2, 3] {
        let mut pool = match Pool::with_spin(threads, std::time::Duration::from_micros(20)) {
            Ok(p) => p,
            Err(e) => panic!("spawn: {e}"),
        };
        for isa in Isa::supported() {
            pool.set_isa(isa);
            for kind in KINDS {
                for (n, k) in [(1usize, 33usize), (33, 129), (129, 301), (1000, 65)] {
                    let case = make_case(kind, n, k, &mut rng);
                    let w = case.matrix();
                    for m in [1usize, 3, 8, 20] {
                        let x: Vec<f32> = (0..m * k).map(|_| rng.f32_in(-1.0, 1.0)).collect();
                        let mut single = vec![0f32; m * n];
                        matmul_rows_with(isa, &w, &x, m, 0..n, &mut single)
                            .unwrap_or_else(|e| panic!("{e}"));
                        let mut pooled = vec![f32::NAN; m * n];
                        pool.matmul(&w, &x, m, &mut pooled)
                            .unwrap_or_else(|e| panic!("{e}"));
                        let same = single
                            .iter()
                            .zip(&pooled)
                            .all(|(a, b)| a.to_bits() == b.to_bits());
                        assert!(same, "{} threads={threads} {isa:?} m={m}", case.label);
                    }
                }
            }
        }
    }
}

#[test]
fn grouped_matmuls_equal_single_matmuls_bit_for_bit() {
    // More jobs than one dispatch takes (MATMUL_GROUP_MAX), of every format and odd shapes.
    let mut rng = Rng(23);
    let pool = Pool::with_spin(2, std::time::Duration::from_micros(20))
        .unwrap_or_else(|e| panic!("spawn: {e}"));
    let cases: Vec<Case> = (0..MATMUL_GROUP_MAX + 5)
        .map(|i| {
            let kind = KINDS[i % KINDS.len()];
            make_case(kind, 17 + 13 * (i % 5), 33 + 16 * (i % 3), &mut rng)
        })
        .collect();
    let mats: Vec<WeightMatrix> = cases.iter().map(|c| c.matrix()).collect();
    for m in [1usize, 9] {
        let xs: Vec<Vec<f32>> = mats
            .iter()
            .map(|w| (0..m * w.k()).map(|_| rng.f32_in(-1.0, 1.0)).collect())
            .collect();
        let mut single: Vec<Vec<f32>> = mats.iter().map(|w| vec![0f32; m * w.n()]).collect();
        for ((w, x), y) in mats.iter().zip(&xs).zip(single.iter_mut()) {
            pool.matmul(w, x, m, y).unwrap_or_else(|e| panic!("{e}"));
        }
        let mut grouped: Vec<Vec<f32>> = mats.iter().map(|w| vec![f32::NAN; m * w.n()]).collect();
        pool.matmul_group(
            mats.iter()
                .zip(&xs)
                .zip(grouped.iter_mut())
                .map(|((w, x), y)| (w, x.as_slice(), m, y.as_mut_slice())),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        for (j, (a, b)) in single.iter().zip(&grouped).enumerate() {
            let same = a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits());
            assert!(same, "job {j} ({}) m={m}", cases[j].label);
        }
        // A bad shape anywhere in the group is an error, not a panic.
        let mut short = vec![0f32; 1];
        let bad = pool.matmul_group([(&mats[0], xs[0].as_slice(), m, short.as_mut_slice())]);
        assert!(bad.is_err());
    }
}

#[test]
fn row_ranges_write_only_their_rows() {
    let mut rng = Rng(11);
    for isa in Isa::supported() {
        for kind in KINDS {
            let case = make_case(kind, 70, 45, &mut rng);
            let w = case.matrix();
            let m = 3;
            let x: Vec<f32> = (0..m * 45).map(|_| rng.f32_in(-1.0, 1.0)).collect();
            let mut full = vec![0f32; m * 70];
            matmul_rows_with(isa, &w, &x, m, 0..70, &mut full).unwrap_or_else(|e| panic!("{e}"));
            let mut part = vec![-7f32; m * 70];
            matmul_rows_with(isa, &w, &x, m, 20..51, &mut part).unwrap_or_else(|e| panic!("{e}"));
            for t in 0..m {
                for r in 0..70 {
                    let want = if (20..51).contains(&r) {
                        full[t * 70 + r]
                    } else {
                        -7.0
                    };
                    assert_eq!(
                        part[t * 70 + r].to_bits(),
                        want.to_bits(),
                        "{kind:?} {isa:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn dequantize_row_is_exact_for_every_format() {
    let mut rng = Rng(3);
    // k = 97: one vector step of 16 plus tails; 301 and 1100: several blocks and tiles through the
    // vector decoders (the AVX2 path on x86-64) with odd tails.
    for k in [97usize, 301, 1100] {
        for kind in KINDS {
            let case = make_case(kind, 130, k, &mut rng);
            let w = case.matrix();
            let mut out = vec![f32::NAN; k];
            for r in [0usize, 1, 127, 128, 129] {
                dequantize_row(&w, r, &mut out).unwrap_or_else(|e| panic!("{e}"));
                for (c, got) in out.iter().enumerate() {
                    // f32(q) * S rounded once to f32 is what formats.md defines; the exact product
                    // rounded to f32 is that same number.
                    let want = case.exact[r * k + c] as f32;
                    assert_eq!(got.to_bits(), want.to_bits(), "{} r={r} c={c}", case.label);
                }
            }
        }
    }
}

#[test]
fn every_usable_e8m0_scale_byte_is_applied_exactly() {
    // All elements 1.0 and x = 2^-6: y = k * 2^(e-133) exactly (k * 2^-133 is a subnormal with room
    // to spare), up to the largest byte each element type accepts, through every folded scale.
    let k = 35;
    for elem in MxElement::ALL {
        let one = (0u8..=255)
            .find(|&c| elem_value(elem, c) == 1.0)
            .unwrap_or_else(|| panic!("{elem:?} has a code for 1.0"));
        let codes = vec![one; 64];
        let mut bytes = Vec::new();
        match elem {
            MxElement::E4M3 | MxElement::E5M2 => bytes.extend_from_slice(&codes[..k]),
            MxElement::E3M2 | MxElement::E2M3 => pack_fp6(&codes, &mut bytes),
            MxElement::E2M1 => bytes.extend(codes.chunks_exact(2).map(|p| p[0] | (p[1] << 4))),
        }
        let x = vec![1.0 / 64.0; k];
        for e in 0..=elem.max_scale_byte() {
            let scales = [e, e];
            let data = WeightData::Mx {
                elem,
                data: &bytes,
                scales: &scales,
            };
            let w = WeightMatrix::new(1, k, data).unwrap_or_else(|err| panic!("{err}"));
            let want = k as f64 * f64::from(E8M0::from_bits(e).to_f32()) / 64.0;
            for isa in Isa::supported() {
                let mut y = [0f32];
                matmul_rows_with(isa, &w, &x, 1, 0..1, &mut y)
                    .unwrap_or_else(|err| panic!("{err}"));
                assert_eq!(f64::from(y[0]), want, "{elem:?} byte {e} {isa:?}");
            }
        }
    }
}

#[test]
fn errors_name_the_problem() {
    let bytes = [0u8; 64];
    // DataLength
    let e = WeightMatrix::new(2, 8, WeightData::F32(&bytes[..60]));
    assert!(matches!(
        e,
        Err(KernelError::DataLength {
            expected: 64,
            found: 60,
            ..
        })
    ));
    // SizeOverflow
    let e = WeightMatrix::new(usize::MAX, 8, WeightData::Bf16(&bytes));
    assert!(matches!(e, Err(KernelError::SizeOverflow { .. })));
    // ScaleCount
    let e = WeightMatrix::new(
        2,
        32,
        WeightData::Mx {
            elem: MxElement::E4M3,
            data: &bytes,
            scales: &[127],
        },
    );
    assert!(matches!(
        e,
        Err(KernelError::ScaleCount {
            expected: 2,
            found: 1,
            ..
        })
    ));
    // BadScale: E8M0 NaN, too large to fold, non-finite f32.
    for (elem, byte) in [(MxElement::E5M2, 0xFF), (MxElement::E2M3, 241)] {
        let scales = [byte];
        let e = WeightMatrix::new(
            1,
            32,
            WeightData::Mx {
                elem,
                data: &bytes[..elem.row_bytes(32).unwrap_or(0)],
                scales: &scales,
            },
        );
        assert!(
            matches!(e, Err(KernelError::BadScale { index: 0, .. })),
            "{elem:?} {byte}"
        );
    }
    let e = WeightMatrix::new(
        1,
        8,
        WeightData::E4m3Tiles {
            q: &bytes[..8],
            scales: &[f32::INFINITY],
        },
    );
    assert!(matches!(e, Err(KernelError::BadScale { .. })));
    // FormatMismatch and Shape
    let w = WeightMatrix::new(2, 8, WeightData::F32(&bytes)).unwrap_or_else(|e| panic!("{e}"));
    let mut y = [0f32; 2];
    let e = gemv_mxfp4_f32(&w, &[0.0; 8], 0..2, &mut y);
    assert!(matches!(e, Err(KernelError::FormatMismatch { .. })));
    let e = gemv_f32_f32(&w, &[0.0; 7], 0..2, &mut y);
    assert!(matches!(
        e,
        Err(KernelError::Shape {
            expected: 8,
            found: 7,
            ..
        })
    ));
    let e = gemv_f32_f32(&w, &[0.0; 8], 0..3, &mut y);
    assert!(matches!(e, Err(KernelError::Shape { .. })));
    let e = dequantize_row(&w, 2, &mut [0.0; 8]);
    assert!(matches!(e, Err(KernelError::Shape { .. })));
    // The message names the matrix and the problem.
    let msg = KernelError::DataLength {
        n: 2,
        k: 8,
        format: "f32",
        what: "element data",
        expected: 64,
        found: 60,
    }
    .to_string();
    assert!(
        msg.contains("[2, 8]") && msg.contains("64") && msg.contains("60"),
        "{msg}"
    );
}

#[test]
fn empty_reduction_gives_zeros() {
    // k = 0: every output is an empty sum, for every format and ISA, with and without a pool.
    let mut rng = Rng(5);
    let pool = Pool::with_spin(2, std::time::Duration::ZERO).unwrap_or_else(|e| panic!("{e}"));
    for kind in KINDS {
        let case = make_case(kind, 37, 0, &mut rng);
        let w = case.matrix();
        for isa in Isa::supported() {
            let mut y = vec![f32::NAN; 2 * 37];
            matmul_rows_with(isa, &w, &[], 2, 0..37, &mut y).unwrap_or_else(|e| panic!("{e}"));
            assert!(y.iter().all(|&v| v == 0.0), "{kind:?} {isa:?}");
        }
        let mut y = vec![f32::NAN; 37];
        pool.matmul(&w, &[], 1, &mut y)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(y.iter().all(|&v| v == 0.0), "{kind:?} pool");
    }
}
