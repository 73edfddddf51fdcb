//! Runs a [`Plan`]: computes each step's output tensors (rayon inside a tensor; small neighbouring
//! tensors together), hands them in order to a writer thread that streams them into shards while
//! hashing, then copies the other files, writes config.json, the index and `ue8-manifest.json`, and
//! renames the finished directory into place.
//!
//! Memory (issue 8 item 3, anonymous memory, the mmapped input is page cache): the writer holds one
//! step's outputs while the next is computed, and the handoff is a rendezvous, so at most two steps'
//! outputs plus per-band scratch are alive; the largest output of a step is the tensor as f32
//! (dequantize --dtype f32), hence <= 2x the largest tensor as f32 + small change.

use crate::encode::{encode, output_specs};
use crate::plan::{Action, OutDtype, Plan, Step};
use crate::source::{decode_entry_f32, decode_group_f32, PlainData};
use crate::ConvertError;
use rayon::prelude::*;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use ue8_io::layout::LayoutEntry;
use ue8_io::manifest::{Manifest, ManifestTensor, TensorMetrics, MANIFEST_FILE};
use ue8_io::shards::{index_json, shard_file_name, split_into_shards};
use ue8_io::writer::{copy_hashed, finish_file, write_hashed};
use ue8_io::{Checkpoint, FileDigest, IoError, OutputDir, SafetensorsWriter, TensorSpec};
use ue8_quant::{BlockFp8, ErrorStats, NonFinite};

/// Steps whose outputs total less than this are computed together in parallel (many small tensors:
/// norms, biases, small projections), bounded so the batch stays well inside the 256 MiB allowance.
const SMALL_BATCH_BYTES: u64 = 32 << 20;

/// Progress callbacks (called from the writer thread).
pub trait Progress: Sync {
    fn begin(&self, _total_bytes: u64, _tensors: usize) {}
    fn tensor_written(&self, _name: &str, _bytes: u64) {}
    fn finish(&self) {}
}

/// No progress output.
pub struct NoProgress;
impl Progress for NoProgress {}

/// Options common to every conversion.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub max_shard_size: u64,
    pub force: bool,
    pub command_line: Vec<String>,
}

/// Result of a conversion.
#[derive(Clone, Debug)]
pub struct Summary {
    pub output: PathBuf,
    pub manifest: Manifest,
    pub bytes_written: u64,
}

enum Bytes<'a> {
    Borrowed(&'a [u8]),
    Owned(Vec<u8>),
    /// f32 values written as their little-endian bytes without a second copy.
    F32(Vec<f32>),
}

impl Bytes<'_> {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Borrowed(b) => b,
            Bytes::Owned(v) => v,
            Bytes::F32(v) => bytemuck::cast_slice(v),
        }
    }
}

/// What the writer thread returns: each file's digest and the manifest records in order.
type WriterResult = (Vec<(String, FileDigest)>, Vec<ManifestTensor>);

struct StepOutput<'a> {
    tensors: Vec<(String, Bytes<'a>)>,
    record: ManifestTensor,
}

fn metrics_of(s: &ErrorStats) -> TensorMetrics {
    let snr = s.snr_db();
    TensorMetrics {
        max_abs: s.max_abs(),
        rms: s.rms(),
        snr_db: snr.is_finite().then_some(snr),
        cosine: s.cosine(),
        clipped_share: s.clipped_share(),
    }
}

fn record(
    name: &str,
    action: &str,
    source_dtype: String,
    shape: Vec<usize>,
    step: &Step,
) -> ManifestTensor {
    ManifestTensor {
        name: name.to_string(),
        action: action.to_string(),
        source_dtype,
        shape,
        outputs: step.outputs.iter().map(|s| s.name.clone()).collect(),
        metrics: None,
        reason: None,
    }
}

/// Encodes decoded values in the output dtype; f32 values are handed over as they are (no copy).
fn to_dtype_bytes(values: Vec<f32>, dtype: OutDtype) -> Bytes<'static> {
    let encode = |conv: fn(f32) -> [u8; 2]| {
        let mut out = vec![0u8; values.len() * 2];
        out.par_chunks_mut(1 << 17)
            .zip(values.par_chunks(1 << 16))
            .for_each(|(o, v)| {
                for (o, x) in o.chunks_exact_mut(2).zip(v) {
                    o.copy_from_slice(&conv(*x));
                }
            });
        out
    };
    match dtype {
        OutDtype::F32 => Bytes::F32(values),
        OutDtype::Bf16 => Bytes::Owned(encode(|x| ue8_formats::f32_to_bf16_rne(x).to_le_bytes())),
        OutDtype::F16 => Bytes::Owned(encode(|x| half::f16::from_f32(x).to_le_bytes())),
    }
}

fn run_step<'a>(ck: &'a Checkpoint, step: &Step) -> Result<StepOutput<'a>, ConvertError> {
    match &step.action {
        Action::Copy { name, reason } => {
            let t = ck.tensor(name)?;
            let mut r = record(name, "kept", t.dtype.to_string(), t.shape.to_vec(), step);
            r.reason = Some(reason.clone());
            Ok(StepOutput {
                tensors: vec![(name.clone(), Bytes::Borrowed(t.bytes))],
                record: r,
            })
        }
        Action::CopyGroup { group, reason } => {
            let d = ck.tensor(&group.data)?;
            let s = ck.tensor(&group.scales)?;
            let mut r = record(
                &group.name,
                "kept",
                d.dtype.to_string(),
                group.shape.clone(),
                step,
            );
            r.reason = Some(reason.clone());
            Ok(StepOutput {
                tensors: vec![
                    (group.data.clone(), Bytes::Borrowed(d.bytes)),
                    (group.scales.clone(), Bytes::Borrowed(s.bytes)),
                ],
                record: r,
            })
        }
        Action::Quantize {
            src,
            out_name,
            scheme,
        } => {
            let (file, src_dtype, shape, data) = match src {
                LayoutEntry::Plain(n) => {
                    let t = ck.tensor(n)?;
                    let data = PlainData::of(&t).ok_or_else(|| {
                        ConvertError::tensor(
                            t.file,
                            n,
                            format!("cannot quantize a {} tensor", t.dtype),
                        )
                    })?;
                    (
                        t.file.to_path_buf(),
                        t.dtype.to_string(),
                        t.shape.to_vec(),
                        data,
                    )
                }
                LayoutEntry::Quant(g) => {
                    let t = ck.tensor(&g.data)?;
                    let (shape, v) = decode_entry_f32(ck, src)?;
                    (
                        t.file.to_path_buf(),
                        format!("{} ({})", t.dtype, "decoded"),
                        shape,
                        PlainData::F32(Cow::Owned(v)),
                    )
                }
            };
            let (n, k) = (shape[0], shape[1]);
            let src_name = match src {
                LayoutEntry::Plain(n) => n.as_str(),
                LayoutEntry::Quant(g) => g.name.as_str(),
            };
            let enc = encode(*scheme, &file, src_name, &data, n, k)?;
            // Outputs are named after the target (lm_head.weight when untying a tied embedding).
            let names = output_specs(*scheme, out_name, n, k)
                .0
                .into_iter()
                .map(|s| s.name);
            let tensors: Vec<(String, Bytes<'_>)> = names
                .zip(enc.tensors)
                .map(|(n, (_, b))| (n, Bytes::Owned(b)))
                .collect();
            let mut r = record(out_name, "quantized", src_dtype, shape, step);
            if out_name != src_name {
                r.reason = Some(format!(
                    "from '{src_name}' (--quantize-lm-head on tied embeddings)"
                ));
            }
            r.metrics = Some(metrics_of(&enc.stats));
            Ok(StepOutput { tensors, record: r })
        }
        Action::Requantize { group, e8m0_scales } => {
            let q = ck.tensor(&group.data)?;
            let (n, k) = (group.shape[0], group.shape[1]);
            let scales = crate::source::block_scales_f32(ck, group)?;
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
                .map_err(|e| ConvertError::quant(q.file, &group.name, e))?;
            let s_bytes = if *e8m0_scales {
                let mut b = vec![0u8; s_out.len()];
                ue8_quant::scales_to_e8m0(&s_out, &mut b)
                    .map_err(|e| ConvertError::quant(q.file, &group.scales, e))?;
                b
            } else {
                bytemuck::cast_slice(&s_out).to_vec()
            };
            let action = if rep.passed_through {
                "passed-through"
            } else {
                "requantized"
            };
            let mut r = record(
                &group.name,
                action,
                q.dtype.to_string(),
                group.shape.clone(),
                step,
            );
            r.metrics = Some(metrics_of(&rep.stats));
            r.reason = Some("metrics: added error against the F32-scale input".into());
            let data = if rep.passed_through {
                Bytes::Borrowed(q.bytes)
            } else {
                Bytes::Owned(q_out)
            };
            Ok(StepOutput {
                tensors: vec![
                    (group.data.clone(), data),
                    (group.scales.clone(), Bytes::Owned(s_bytes)),
                ],
                record: r,
            })
        }
        Action::Dequantize { group, dtype } => {
            let d = ck.tensor(&group.data)?;
            // Decoded f32 (4 bytes/element) then the output (2 more for bf16/f16, none for f32): with the
            // writer's previous tensor that is <= 2x the largest tensor as f32.
            let values = decode_group_f32(ck, group)?;
            let bytes = to_dtype_bytes(values, *dtype);
            let r = record(
                &group.name,
                "dequantized",
                d.dtype.to_string(),
                group.shape.clone(),
                step,
            );
            Ok(StepOutput {
                tensors: vec![(group.name.clone(), bytes)],
                record: r,
            })
        }
    }
}

fn step_bytes(step: &Step) -> u64 {
    step.outputs.iter().map(|s| s.byte_len().unwrap_or(0)).sum()
}

/// The non-weight files of an input directory, relative paths, recursively (hidden entries skipped).
fn other_files(dir: &Path) -> Result<Vec<PathBuf>, ConvertError> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let abs = dir.join(&rel);
        let rd = std::fs::read_dir(&abs).map_err(|e| IoError::io(&abs, e))?;
        for e in rd {
            let e = e.map_err(|e| IoError::io(&abs, e))?;
            let name = e.file_name();
            let s = name.to_string_lossy();
            if s.starts_with('.') {
                continue;
            }
            let r = rel.join(&name);
            let ft = e
                .file_type()
                .map_err(|e| IoError::io(e_path(&abs, &name), e))?;
            if ft.is_dir() {
                stack.push(r);
            } else if rel.as_os_str().is_empty()
                && (s.ends_with(".safetensors")
                    || s == ue8_io::checkpoint::INDEX_FILE
                    || s == "config.json"
                    || s == MANIFEST_FILE)
            {
                continue;
            } else if ft.is_file() || ft.is_symlink() {
                out.push(r);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn e_path(dir: &Path, name: &std::ffi::OsStr) -> PathBuf {
    dir.join(name)
}

fn rel_string(p: &Path) -> String {
    p.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

fn check_not_inside(input: &Path, output: &Path) -> Result<(), ConvertError> {
    let inp = std::fs::canonicalize(input).map_err(|e| IoError::io(input, e))?;
    let parent = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let (Ok(par), Some(name)) = (std::fs::canonicalize(parent), output.file_name()) {
        let out = par.join(name);
        if out == inp
            || out.starts_with(&inp)
            || (inp.is_file() && inp.parent() == Some(out.as_path()))
        {
            return Err(ConvertError::Usage(format!(
                "output {} would overwrite or sit inside the input {}; inputs are never written",
                output.display(),
                input.display()
            )));
        }
    }
    Ok(())
}

/// Executes `plan` reading `ck` into the directory `output`.
pub fn execute(
    ck: &Checkpoint,
    plan: &Plan,
    output: &Path,
    opts: &RunOptions,
    progress: &dyn Progress,
) -> Result<Summary, ConvertError> {
    check_not_inside(ck.root(), output)?;
    let outdir = OutputDir::create(output, opts.force)?;
    let dir = outdir.path().to_path_buf();

    // Shards: each step's outputs stay together.
    let groups: Vec<Vec<TensorSpec>> = plan.steps.iter().map(|s| s.outputs.clone()).collect();
    let shards = split_into_shards(groups, opts.max_shard_size);
    let n_shards = shards.len();
    let mut shard_meta: Vec<BTreeMap<String, String>> = vec![BTreeMap::new(); n_shards];
    {
        let mut si = 0usize;
        let mut left = shards.first().map(|s| s.len()).unwrap_or(0);
        for step in &plan.steps {
            while left == 0 && si + 1 < n_shards {
                si += 1;
                left = shards[si].len();
            }
            shard_meta[si].extend(step.metadata.clone());
            left = left.saturating_sub(step.outputs.len());
        }
    }
    let total_bytes: u64 = plan.steps.iter().map(step_bytes).sum();
    progress.begin(total_bytes, plan.steps.len());

    let mut records = Vec::with_capacity(plan.steps.len());
    let digests: Vec<(String, FileDigest)> =
        std::thread::scope(|scope| -> Result<_, ConvertError> {
            let (tx, rx) = mpsc::sync_channel::<StepOutput<'_>>(0);
            let dir_w = dir.clone();
            let shards_w = &shards;
            let meta_w = &shard_meta;
            let writer = scope.spawn(move || -> Result<WriterResult, ConvertError> {
                let mut digests = Vec::new();
                let mut recs = Vec::new();
                let mut pending: std::collections::VecDeque<(String, Bytes<'_>)> =
                    Default::default();
                for (i, specs) in shards_w.iter().enumerate() {
                    let mut meta = meta_w[i].clone();
                    meta.insert("format".into(), "pt".into());
                    let name = shard_file_name(i, n_shards);
                    let path = dir_w.join(&name);
                    let mut w = SafetensorsWriter::create(&path, specs.clone(), &meta)?;
                    for _ in 0..specs.len() {
                        if pending.is_empty() {
                            let out = rx.recv().map_err(|_| ConvertError::Interrupted)?;
                            recs.push(out.record);
                            pending.extend(out.tensors);
                        }
                        let (tname, bytes) =
                            pending.pop_front().ok_or(ConvertError::Interrupted)?;
                        w.write_tensor(&tname, bytes.as_slice())?;
                        progress.tensor_written(&tname, bytes.as_slice().len() as u64);
                    }
                    digests.push((name, finish_file(w)?));
                }
                Ok((digests, recs))
            });

            let mut send_err = false;
            let mut i = 0;
            let steps = &plan.steps;
            let mut compute_err = None;
            while i < steps.len() && !send_err {
                // A batch: one large step, or consecutive small ones computed in parallel.
                let mut j = i + 1;
                let mut bytes = step_bytes(&steps[i]);
                while j < steps.len() && bytes + step_bytes(&steps[j]) < SMALL_BATCH_BYTES {
                    bytes += step_bytes(&steps[j]);
                    j += 1;
                }
                let outs: Vec<Result<StepOutput<'_>, ConvertError>> = if j - i == 1 {
                    vec![run_step(ck, &steps[i])]
                } else {
                    steps[i..j].par_iter().map(|s| run_step(ck, s)).collect()
                };
                for o in outs {
                    match o {
                        Ok(o) => {
                            if tx.send(o).is_err() {
                                send_err = true;
                                break;
                            }
                        }
                        Err(e) => {
                            compute_err = Some(e);
                            send_err = true;
                            break;
                        }
                    }
                }
                i = j;
            }
            drop(tx);
            let joined = writer.join().map_err(|_| ConvertError::Interrupted)?;
            if let Some(e) = compute_err {
                return Err(e);
            }
            let (digests, recs) = joined?;
            records = recs;
            Ok(digests)
        })?;

    let mut manifest = Manifest {
        tool: "ue8".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        command_line: opts.command_line.clone(),
        operation: plan.operation.into(),
        target: plan.target.clone(),
        files: Vec::new(),
        tensors: records,
    };
    let mut bytes_written = 0u64;
    for (name, d) in &digests {
        manifest.add_file(name, d);
        bytes_written += d.bytes;
    }
    if n_shards > 1 {
        let idx = serde_json::to_vec_pretty(&index_json(&shards)).unwrap_or_default();
        let d = write_hashed(&dir.join(ue8_io::checkpoint::INDEX_FILE), &idx)?;
        manifest.add_file(ue8_io::checkpoint::INDEX_FILE, &d);
    }
    if let Some(cfg) = &plan.config {
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

/// Runs `f` on a rayon pool of `threads` threads (0 = rayon's default, one per core).
pub fn with_threads<T: Send>(
    threads: usize,
    f: impl FnOnce() -> T + Send,
) -> Result<T, ConvertError> {
    if threads == 0 {
        return Ok(f());
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| ConvertError::Usage(format!("--threads {threads}: {e}")))?;
    Ok(pool.install(f))
}
