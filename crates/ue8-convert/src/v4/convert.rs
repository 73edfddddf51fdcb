//! `dequantize` and `requantize` of DeepSeek-V4 checkpoints, streamed like every ue8 conversion: a plan
//! of output tensors known before any byte is written, one step computed at a time (rayon inside it)
//! while a writer thread streams the previous one into shards with sha256, other files copied, and the
//! directory renamed into place only when complete (`ue8_io::OutputDir`).
//!
//! Refusal comes first: every FP4 expert whose scales do not prove the re-encode exact (a group more than
//! 2^14 below its tile's largest) is re-encoded in a dry run before the output directory is created, and
//! the first that would lose information stops the command, naming the tensor and the tile, unless
//! `--allow-lossy`.

use super::reencode::{exact_by_scales, reencode_tensor};
use crate::exec::{Progress, RunOptions, Summary};
use crate::plan::OutDtype;
use crate::source::{block_scales_f32, decode_group_f32};
use crate::ConvertError;
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use ue8_io::layout::{GroupKind, LayoutEntry, QuantGroup};
use ue8_io::layout_v4::{detect_v4, ExpertDtype, V4Kind, V4Layout, V4ScaleDtype, V4Tensor};
use ue8_io::manifest::{Manifest, ManifestTensor, TensorMetrics, MANIFEST_FILE};
use ue8_io::shards::{index_json, shard_file_name, split_into_shards};
use ue8_io::writer::{copy_hashed, finish_file, write_hashed};
use ue8_io::{Checkpoint, Dtype, IoError, OutputDir, SafetensorsWriter, TensorSpec};
use ue8_quant::{BlockFp8, ErrorStats, NonFinite};

/// Options of a V4 requantize.
#[derive(Clone, Copy, Debug, Default)]
pub struct V4RequantizeOptions {
    /// Re-encode FP4 experts even where FP8 cannot hold them exactly, reporting the error per tensor.
    pub allow_lossy: bool,
}

#[derive(Clone, Debug)]
enum Op {
    Copy(String),
    Dequantize(QuantGroup, OutDtype),
    ReencodeFp4(V4Tensor),
    RequantF32Scales(QuantGroup),
    CopyPair(V4Tensor),
}

#[derive(Clone, Debug)]
struct Step {
    op: Op,
    outputs: Vec<TensorSpec>,
}

struct StepOut<'a> {
    tensors: Vec<(String, std::borrow::Cow<'a, [u8]>)>,
    record: ManifestTensor,
}

fn strict_layout(ck: &Checkpoint) -> Result<V4Layout, ConvertError> {
    let layout = detect_v4(ck);
    match layout.first_problem() {
        Some(e) => Err(e.into()),
        None => Ok(layout),
    }
}

fn group_of(t: &V4Tensor) -> Option<QuantGroup> {
    let layout = V4Layout {
        tensors: vec![t.clone()],
        anomalies: Vec::new(),
        expert_dtype: ue8_io::layout_v4::ExpertDtypeInfo {
            declared: None,
            found: None,
        },
    };
    match layout.to_layout_entries().pop() {
        Some(LayoutEntry::Quant(g)) => Some(g),
        _ => None,
    }
}

fn tile_grid(shape: &[usize]) -> Vec<usize> {
    vec![
        shape.first().copied().unwrap_or(0).div_ceil(128),
        shape.get(1).copied().unwrap_or(0).div_ceil(128),
    ]
}

fn copy_specs(ck: &Checkpoint, names: &[&str]) -> Result<Vec<TensorSpec>, ConvertError> {
    names
        .iter()
        .map(|n| {
            let t = ck.tensor(n)?;
            Ok(TensorSpec::new(*n, t.dtype, t.shape.to_vec()))
        })
        .collect()
}

fn plan_dequantize_steps(
    ck: &Checkpoint,
    layout: &V4Layout,
    dtype: OutDtype,
) -> Result<Vec<Step>, ConvertError> {
    let mut steps = Vec::new();
    for t in &layout.tensors {
        match (t.kind, group_of(t)) {
            (V4Kind::Fp8Block { .. } | V4Kind::Fp4Expert, Some(g)) => steps.push(Step {
                outputs: vec![TensorSpec::new(&t.name, dtype.dtype(), t.shape.clone())],
                op: Op::Dequantize(g, dtype),
            }),
            _ => steps.push(Step {
                outputs: copy_specs(ck, &[&t.name])?,
                op: Op::Copy(t.name.clone()),
            }),
        }
    }
    Ok(steps)
}

fn plan_requantize_steps(ck: &Checkpoint, layout: &V4Layout) -> Result<Vec<Step>, ConvertError> {
    let mut steps = Vec::new();
    for t in &layout.tensors {
        let scale = t.scale.clone().unwrap_or_default();
        let fp8_outputs = || {
            vec![
                TensorSpec::new(&t.name, Dtype::F8E4M3, t.shape.clone()),
                TensorSpec::new(&scale, Dtype::F8E8M0, tile_grid(&t.shape)),
            ]
        };
        match (t.kind, group_of(t)) {
            (V4Kind::Fp4Expert, Some(_)) => steps.push(Step {
                outputs: fp8_outputs(),
                op: Op::ReencodeFp4(t.clone()),
            }),
            (
                V4Kind::Fp8Block {
                    scale: V4ScaleDtype::F32,
                },
                Some(g),
            ) => steps.push(Step {
                outputs: fp8_outputs(),
                op: Op::RequantF32Scales(g),
            }),
            (V4Kind::Fp8Block { .. }, Some(_)) => steps.push(Step {
                outputs: copy_specs(ck, &[&t.name, &scale])?,
                op: Op::CopyPair(t.clone()),
            }),
            _ => steps.push(Step {
                outputs: copy_specs(ck, &[&t.name])?,
                op: Op::Copy(t.name.clone()),
            }),
        }
    }
    Ok(steps)
}

/// The dry run of the refusal rule: every FP4 expert that its scales do not prove exact is re-encoded
/// (into scratch) before anything is written. Returns the error of the first that is not exact.
pub fn check_reencode_exact(ck: &Checkpoint, layout: &V4Layout) -> Result<(), ConvertError> {
    layout
        .tensors
        .par_iter()
        .filter(|t| t.kind == V4Kind::Fp4Expert)
        .try_for_each(|t| -> Result<(), ConvertError> {
            let (w, s) = fp4_pair(ck, t)?;
            let (n, k) = (t.shape[0], t.shape[1]);
            if exact_by_scales(s.bytes, n, k) {
                return Ok(());
            }
            reencode_tensor(w.bytes, s.bytes, n, k, false)
                .map(|_| ())
                .map_err(|e| ConvertError::quant(w.file, &t.name, e))
        })
}

fn fp4_pair<'a>(
    ck: &'a Checkpoint,
    t: &V4Tensor,
) -> Result<(ue8_io::TensorView<'a>, ue8_io::TensorView<'a>), ConvertError> {
    let w = ck.tensor(&t.name)?;
    let s = ck.tensor(t.scale.as_deref().unwrap_or_default())?;
    Ok((w, s))
}

fn metrics_of(s: &ErrorStats) -> TensorMetrics {
    let snr = s.snr_db();
    let finite = |v: f64| if v.is_finite() { v } else { 1.0 };
    TensorMetrics {
        max_abs: s.max_abs(),
        rms: s.rms(),
        snr_db: snr.is_finite().then_some(snr),
        cosine: finite(s.cosine()),
        clipped_share: s.clipped_share(),
    }
}

fn record(name: &str, action: &str, src: &str, shape: &[usize], step: &Step) -> ManifestTensor {
    ManifestTensor {
        name: name.to_string(),
        action: action.to_string(),
        source_dtype: src.to_string(),
        shape: shape.to_vec(),
        outputs: step.outputs.iter().map(|s| s.name.clone()).collect(),
        metrics: None,
        reason: None,
    }
}

fn to_dtype_bytes(values: &[f32], dtype: OutDtype) -> Vec<u8> {
    let width = if dtype == OutDtype::F32 { 4 } else { 2 };
    let mut out = vec![0u8; values.len() * width];
    out.par_chunks_mut(width << 16)
        .zip(values.par_chunks(1 << 16))
        .for_each(|(o, v)| {
            for (o, x) in o.chunks_exact_mut(width).zip(v) {
                match dtype {
                    OutDtype::F32 => o.copy_from_slice(&x.to_le_bytes()),
                    OutDtype::Bf16 => {
                        o.copy_from_slice(&ue8_formats::f32_to_bf16_rne(*x).to_le_bytes())
                    }
                    OutDtype::F16 => o.copy_from_slice(&half::f16::from_f32(*x).to_le_bytes()),
                }
            }
        });
    out
}

fn run_step<'a>(
    ck: &'a Checkpoint,
    step: &Step,
    opts: V4RequantizeOptions,
) -> Result<StepOut<'a>, ConvertError> {
    use std::borrow::Cow;
    match &step.op {
        Op::Copy(name) => {
            let t = ck.tensor(name)?;
            let mut r = record(name, "kept", t.dtype.name(), t.shape, step);
            r.reason = Some("not quantized".into());
            Ok(StepOut {
                tensors: vec![(name.clone(), Cow::Borrowed(t.bytes))],
                record: r,
            })
        }
        Op::CopyPair(t) => {
            let (w, s) = fp4_pair(ck, t)?;
            let mut r = record(&t.name, "kept", w.dtype.name(), &t.shape, step);
            r.reason = Some("FP8 with E8M0 scales already".into());
            Ok(StepOut {
                tensors: vec![
                    (t.name.clone(), Cow::Borrowed(w.bytes)),
                    (s.name.to_string(), Cow::Borrowed(s.bytes)),
                ],
                record: r,
            })
        }
        Op::Dequantize(g, dtype) => {
            let d = ck.tensor(&g.data)?;
            let values = decode_group_f32(ck, g)?;
            let bytes = to_dtype_bytes(&values, *dtype);
            let src = match g.kind {
                GroupKind::Mx { .. } => "FP4 (I8-packed E2M1, E8M0 scales)".to_string(),
                GroupKind::BlockFp8 { .. } => d.dtype.name().to_string(),
            };
            Ok(StepOut {
                tensors: vec![(g.name.clone(), Cow::Owned(bytes))],
                record: record(&g.name, "dequantized", &src, &g.shape, step),
            })
        }
        Op::ReencodeFp4(t) => {
            let (w, s) = fp4_pair(ck, t)?;
            let (n, k) = (t.shape[0], t.shape[1]);
            let re = reencode_tensor(w.bytes, s.bytes, n, k, opts.allow_lossy)
                .map_err(|e| ConvertError::quant(w.file, &t.name, e))?;
            let mut r = record(
                &t.name,
                "requantized",
                "FP4 (I8-packed E2M1)",
                &t.shape,
                step,
            );
            r.metrics = Some(metrics_of(&re.stats));
            r.reason = Some(if re.lossy {
                format!(
                    "LOSSY FP4 -> FP8 re-encode (--allow-lossy): a group is 2^{} below its tile's largest scale",
                    re.max_gap
                )
            } else {
                format!(
                    "exact FP4 -> FP8 re-encode (largest group gap 2^{})",
                    re.max_gap
                )
            });
            Ok(StepOut {
                tensors: vec![
                    (t.name.clone(), Cow::Owned(re.codes)),
                    (s.name.to_string(), Cow::Owned(re.tile_scales)),
                ],
                record: r,
            })
        }
        Op::RequantF32Scales(g) => {
            let q = ck.tensor(&g.data)?;
            let (n, k) = (g.shape[0], g.shape[1]);
            let scales = block_scales_f32(ck, g)?;
            let mut q_out = vec![0u8; q.bytes.len()];
            let mut s_out = vec![0f32; scales.len()];
            let rep = BlockFp8::WEIGHT
                .requantize_to_ue8m0(
                    q.bytes,
                    &scales,
                    n,
                    k,
                    NonFinite::Reject,
                    &mut q_out,
                    &mut s_out,
                )
                .map_err(|e| ConvertError::quant(q.file, &g.name, e))?;
            let mut s_bytes = vec![0u8; s_out.len()];
            ue8_quant::scales_to_e8m0(&s_out, &mut s_bytes)
                .map_err(|e| ConvertError::quant(q.file, &g.scales, e))?;
            let action = if rep.passed_through {
                "passed-through"
            } else {
                "requantized"
            };
            let mut r = record(&g.name, action, "F8_E4M3 (F32 scales)", &g.shape, step);
            r.metrics = Some(metrics_of(&rep.stats));
            r.reason = Some("metrics: added error against the F32-scale input".into());
            let data = if rep.passed_through {
                Cow::Borrowed(q.bytes)
            } else {
                Cow::Owned(q_out)
            };
            Ok(StepOut {
                tensors: vec![
                    (g.data.clone(), data),
                    (g.scales.clone(), Cow::Owned(s_bytes)),
                ],
                record: r,
            })
        }
    }
}

/// `ue8 dequantize` of a V4 checkpoint: FP8 and FP4 weights to plain `dtype` under the same names,
/// `.scale` tensors dropped, `quantization_config` and `expert_dtype` removed from config.json.
pub fn dequantize_v4(
    ck: &Checkpoint,
    dtype: OutDtype,
    output: &Path,
    opts: &RunOptions,
    progress: &dyn Progress,
) -> Result<Summary, ConvertError> {
    let layout = strict_layout(ck)?;
    let steps = plan_dequantize_steps(ck, &layout, dtype)?;
    let config = ck.config().cloned().map(|mut c| {
        if let Some(obj) = c.as_object_mut() {
            obj.remove("quantization_config");
            obj.remove("expert_dtype");
            obj.insert("torch_dtype".into(), dtype.torch_name().into());
        }
        c
    });
    let target = dtype.torch_name().to_string();
    run(
        ck,
        &steps,
        config,
        ("dequantize", target),
        output,
        opts,
        V4RequantizeOptions::default(),
        progress,
    )
}

/// `ue8 requantize --to fp8-ue8m0` of a V4 checkpoint: FP4 experts re-encoded to F8_E4M3 with F8_E8M0
/// `.scale` over 128x128 tiles (exact, or refused before anything is written unless `allow_lossy`), F32-scale
/// FP8 weights (Base models) moved to UE8M0 scales stored as F8_E8M0, `expert_dtype` set to "fp8".
pub fn requantize_v4(
    ck: &Checkpoint,
    v4: V4RequantizeOptions,
    output: &Path,
    opts: &RunOptions,
    progress: &dyn Progress,
) -> Result<Summary, ConvertError> {
    let layout = strict_layout(ck)?;
    if !v4.allow_lossy {
        check_reencode_exact(ck, &layout)?;
    }
    let steps = plan_requantize_steps(ck, &layout)?;
    let experts_now_fp8 = layout.expert_dtype.effective() == Some(ExpertDtype::Fp4)
        || layout.expert_dtype.found == Some(ExpertDtype::Fp8);
    let config = ck.config().cloned().map(|mut c| {
        if let Some(obj) = c.as_object_mut() {
            if experts_now_fp8 || obj.contains_key("expert_dtype") {
                obj.insert("expert_dtype".into(), ExpertDtype::Fp8.name().into());
            }
            let q = obj
                .entry("quantization_config")
                .or_insert_with(|| serde_json::json!({}));
            if let Some(q) = q.as_object_mut() {
                q.insert("activation_scheme".into(), "dynamic".into());
                q.insert("fmt".into(), "e4m3".into());
                q.insert("quant_method".into(), "fp8".into());
                q.insert("scale_fmt".into(), "ue8m0".into());
                q.insert("weight_block_size".into(), serde_json::json!([128, 128]));
            }
        }
        c
    });
    run(
        ck,
        &steps,
        config,
        ("requantize", "fp8-ue8m0".into()),
        output,
        opts,
        v4,
        progress,
    )
}

/// The non-weight files of the input directory (relative paths, hidden entries skipped).
fn other_files(dir: &Path) -> Result<Vec<PathBuf>, ConvertError> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let abs = dir.join(&rel);
        for e in std::fs::read_dir(&abs).map_err(|e| IoError::io(&abs, e))? {
            let e = e.map_err(|e| IoError::io(&abs, e))?;
            let name = e.file_name();
            let s = name.to_string_lossy().into_owned();
            let ft = e.file_type().map_err(|err| IoError::io(e.path(), err))?;
            let r = rel.join(&name);
            let top = rel.as_os_str().is_empty();
            let weights = s.ends_with(".safetensors")
                || s == ue8_io::checkpoint::INDEX_FILE
                || s == "config.json"
                || s == MANIFEST_FILE;
            if s.starts_with('.') || (top && weights) {
                continue;
            }
            if ft.is_dir() {
                stack.push(r);
            } else {
                out.push(r);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn rel_string(p: &Path) -> String {
    p.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

#[allow(clippy::too_many_arguments)]
fn run(
    ck: &Checkpoint,
    steps: &[Step],
    config: Option<serde_json::Value>,
    (operation, target): (&str, String),
    output: &Path,
    opts: &RunOptions,
    v4: V4RequantizeOptions,
    progress: &dyn Progress,
) -> Result<Summary, ConvertError> {
    let inp = std::fs::canonicalize(ck.root()).map_err(|e| IoError::io(ck.root(), e))?;
    // The output need not exist yet: resolve its parent and append its name.
    let parent = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let resolved = std::fs::canonicalize(parent)
        .ok()
        .zip(output.file_name())
        .map(|(p, n)| p.join(n));
    if resolved.is_some_and(|o| o.starts_with(&inp) || inp.starts_with(&o)) {
        return Err(ConvertError::Usage(format!(
            "output {} would overwrite or sit inside the input {}; inputs are never written",
            output.display(),
            ck.root().display()
        )));
    }
    let outdir = OutputDir::create(output, opts.force)?;
    let dir = outdir.path().to_path_buf();
    let shards = split_into_shards(
        steps.iter().map(|s| s.outputs.clone()).collect(),
        opts.max_shard_size,
    );
    let n_shards = shards.len();
    let total: u64 = steps
        .iter()
        .flat_map(|s| &s.outputs)
        .map(|s| s.byte_len().unwrap_or(0))
        .sum();
    progress.begin(total, steps.len());

    let (digests, records) = std::thread::scope(|scope| -> Result<_, ConvertError> {
        // Rendezvous channel: the writer holds one step while the next is computed (memory bound).
        let (tx, rx) = mpsc::sync_channel::<StepOut<'_>>(0);
        let shards_w = &shards;
        let dir_w = &dir;
        let writer = scope.spawn(move || -> Result<_, ConvertError> {
            let mut digests = Vec::new();
            let mut records = Vec::new();
            let mut pending = std::collections::VecDeque::new();
            for (i, specs) in shards_w.iter().enumerate() {
                let name = shard_file_name(i, n_shards);
                let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
                let mut w = SafetensorsWriter::create(&dir_w.join(&name), specs.clone(), &meta)?;
                for _ in 0..specs.len() {
                    if pending.is_empty() {
                        let out: StepOut<'_> = rx.recv().map_err(|_| ConvertError::Interrupted)?;
                        records.push(out.record);
                        pending.extend(out.tensors);
                    }
                    let (tname, bytes) = pending.pop_front().ok_or(ConvertError::Interrupted)?;
                    w.write_tensor(&tname, &bytes)?;
                    progress.tensor_written(&tname, bytes.len() as u64);
                }
                digests.push((name, finish_file(w)?));
            }
            Ok((digests, records))
        });
        let mut compute_err = None;
        for step in steps {
            match run_step(ck, step, v4) {
                Ok(o) => {
                    if tx.send(o).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    compute_err = Some(e);
                    break;
                }
            }
        }
        drop(tx);
        let joined = writer.join().map_err(|_| ConvertError::Interrupted)?;
        if let Some(e) = compute_err {
            return Err(e);
        }
        joined
    })?;

    let mut manifest = Manifest {
        tool: "ue8".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        command_line: opts.command_line.clone(),
        operation: operation.into(),
        target,
        files: Vec::new(),
        tensors: records,
    };
    let mut bytes_written = 0;
    for (name, d) in &digests {
        manifest.add_file(name, d);
        bytes_written += d.bytes;
    }
    if n_shards > 1 {
        let idx = serde_json::to_vec_pretty(&index_json(&shards)).unwrap_or_default();
        let d = write_hashed(&dir.join(ue8_io::checkpoint::INDEX_FILE), &idx)?;
        manifest.add_file(ue8_io::checkpoint::INDEX_FILE, &d);
    }
    if let Some(cfg) = &config {
        let mut text = serde_json::to_vec_pretty(cfg).unwrap_or_default();
        text.push(b'\n');
        let d = write_hashed(&dir.join("config.json"), &text)?;
        manifest.add_file("config.json", &d);
    }
    if ck.is_dir() {
        for rel in other_files(ck.root())? {
            let dst = dir.join(&rel);
            if let Some(p) = dst.parent() {
                std::fs::create_dir_all(p).map_err(|e| IoError::io(p, e))?;
            }
            let d = copy_hashed(&ck.root().join(&rel), &dst)?;
            manifest.add_file(&rel_string(&rel), &d);
        }
    }
    manifest.files.sort_by(|a, b| a.path.cmp(&b.path));
    std::fs::write(dir.join(MANIFEST_FILE), manifest.to_json())
        .map_err(|e| IoError::io(dir.join(MANIFEST_FILE), e))?;
    let out = outdir.commit()?;
    progress.finish();
    Ok(Summary {
        output: out,
        manifest,
        bytes_written,
    })
}
