//! `import-gguf`: a Llama-family GGUF to a Hugging Face model directory.
//!
//! Output (`OUTPUT_DIR`): `model.safetensors` (HF tensor names, Q/K rows back in HF's rotate-half order,
//! BF16 or F32), `config.json` (`LlamaForCausalLM`), `tokenizer.json`, `tokenizer_config.json`
//! (chat template, `add_bos_token`) and `generation_config.json`. The directory is built under a hidden
//! sibling name and renamed into place when complete: an interrupted import leaves nothing under
//! `OUTPUT_DIR`, and `--force` replaces an existing one only at that last step.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, View};
use serde_json::{json, Map, Value};

use super::dequant::dequantize_to_f32;
use super::error::GgufError;
use super::file::GgufFile;
use super::names::{hf_name, row_permutation, unpermute_rows, RowPermutation};
use super::reader::{GgufHeader, TensorInfo};
use super::tokenizer::{build_tokenizer, TokenizerFiles};
use super::value::MetadataValue;

/// Element type of the written safetensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImportDtype {
    /// bfloat16, round to nearest even from the dequantized f32 (the default, like HF checkpoints).
    #[default]
    Bf16,
    /// f32, exactly the dequantized values.
    F32,
}

impl ImportDtype {
    fn torch_dtype(self) -> &'static str {
        match self {
            ImportDtype::Bf16 => "bfloat16",
            ImportDtype::F32 => "float32",
        }
    }

    fn bytes_per_elem(self) -> usize {
        match self {
            ImportDtype::Bf16 => 2,
            ImportDtype::F32 => 4,
        }
    }
}

/// Options of [`import_gguf`].
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    pub dtype: ImportDtype,
    /// Replace an existing output directory.
    pub force: bool,
}

/// What [`import_gguf`] wrote.
#[derive(Debug, Clone)]
pub struct ImportReport {
    pub output_dir: PathBuf,
    pub architecture: String,
    /// Number of tensors written.
    pub tensors: usize,
    /// Number of parameters written.
    pub parameters: u64,
    /// `tokenizer.ggml.pre` of the source.
    pub pre_tokenizer: String,
    /// Files written, relative to `output_dir`.
    pub files: Vec<String>,
    /// Count of source tensors per GGML type name, sorted by name.
    pub source_types: Vec<(String, usize)>,
}

/// Llama hyper-parameters read from `<arch>.*` keys.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaParams {
    pub hidden_size: u64,
    pub intermediate_size: u64,
    pub num_hidden_layers: u64,
    pub num_attention_heads: u64,
    pub num_key_value_heads: u64,
    pub head_dim: u64,
    pub rms_norm_eps: f32,
    pub rope_theta: f32,
    pub max_position_embeddings: u64,
    pub vocab_size: u64,
}

struct Keys<'a> {
    h: &'a GgufHeader,
    path: &'a Path,
    arch: &'a str,
}

impl Keys<'_> {
    fn value(&self, suffix: &str) -> Option<(String, &MetadataValue)> {
        let key = format!("{}.{suffix}", self.arch);
        self.h.get(&key).map(|v| (key, v))
    }

    fn missing(&self, suffix: &str) -> GgufError {
        GgufError::MissingKey {
            path: self.path.to_path_buf(),
            key: format!("{}.{suffix}", self.arch),
        }
    }

    fn opt_u64(&self, suffix: &str) -> Result<Option<u64>, GgufError> {
        let Some((key, v)) = self.value(suffix) else {
            return Ok(None);
        };
        v.as_u64().map(Some).ok_or_else(|| GgufError::WrongKeyType {
            path: self.path.to_path_buf(),
            key,
            expected: "an unsigned integer (per-layer arrays are not supported)",
            found: v.type_name().into(),
        })
    }

    fn u64(&self, suffix: &str) -> Result<u64, GgufError> {
        self.opt_u64(suffix)?.ok_or_else(|| self.missing(suffix))
    }

    fn opt_f32(&self, suffix: &str) -> Result<Option<f32>, GgufError> {
        let Some((key, v)) = self.value(suffix) else {
            return Ok(None);
        };
        v.as_f64()
            .map(|x| Some(x as f32))
            .ok_or_else(|| GgufError::WrongKeyType {
                path: self.path.to_path_buf(),
                key,
                expected: "a number",
                found: v.type_name().into(),
            })
    }
}

fn invalid(path: &Path, problem: String) -> GgufError {
    GgufError::Invalid {
        path: path.to_path_buf(),
        problem,
    }
}

/// Reads the Llama hyper-parameters of `h` (`path` names the file in errors).
pub fn llama_params(
    h: &GgufHeader,
    path: &Path,
    arch: &str,
    n_tokens: usize,
) -> Result<LlamaParams, GgufError> {
    let k = Keys { h, path, arch };
    let hidden = k.u64("embedding_length")?;
    let heads = k.u64("attention.head_count")?;
    let kv_heads = k.opt_u64("attention.head_count_kv")?.unwrap_or(heads);
    if heads == 0 || kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
        return Err(invalid(
            path,
            format!("{heads} attention heads cannot share {kv_heads} key/value heads"),
        ));
    }
    let head_dim = match k.opt_u64("attention.key_length")? {
        Some(d) => d,
        None if hidden.is_multiple_of(heads) => hidden / heads,
        None => {
            return Err(invalid(
                path,
                format!("hidden size {hidden} is not a multiple of {heads} heads"),
            ))
        }
    };
    if let Some(v) = k.opt_u64("attention.value_length")? {
        if v != head_dim {
            return Err(invalid(path, format!("value head size {v} differs from key head size {head_dim}; LlamaForCausalLM needs them equal")));
        }
    }
    if let Some(rot) = k.opt_u64("rope.dimension_count")? {
        if rot != head_dim {
            return Err(invalid(
                path,
                format!(
                    "RoPE on {rot} of {head_dim} head dimensions (partial rotary) is not supported"
                ),
            ));
        }
    }
    if h.get(&format!("{arch}.rope.scaling.type")).is_some() {
        return Err(invalid(
            path,
            format!(
                "{arch}.rope.scaling.type is set; RoPE scaling is not supported by import-gguf yet"
            ),
        ));
    }
    let eps = k
        .opt_f32("attention.layer_norm_rms_epsilon")?
        .ok_or_else(|| k.missing("attention.layer_norm_rms_epsilon"))?;
    Ok(LlamaParams {
        hidden_size: hidden,
        intermediate_size: k.u64("feed_forward_length")?,
        num_hidden_layers: k.u64("block_count")?,
        num_attention_heads: heads,
        num_key_value_heads: kv_heads,
        head_dim,
        rms_norm_eps: eps,
        // llama.cpp's default when the key is absent.
        rope_theta: k.opt_f32("rope.freq_base")?.unwrap_or(10_000.0),
        max_position_embeddings: k.u64("context_length")?,
        // Absent in many GGUFs: the embedding's row count, else the tokenizer's size.
        vocab_size: match k.opt_u64("vocab_size")? {
            Some(v) => v,
            None => h
                .tensor("token_embd.weight")
                .and_then(|t| t.dims.get(1).copied())
                .unwrap_or(n_tokens as u64),
        },
    })
}

/// An f32 as the shortest decimal that reads back to it (1e-05, not 9.999999747378752e-06), so that
/// config.json shows what the model's authors wrote.
fn f32_json(x: f32) -> Value {
    format!("{x}")
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

fn config_json(
    p: &LlamaParams,
    tok: &TokenizerFiles,
    tied: bool,
    attention_bias: bool,
    dtype: ImportDtype,
) -> Value {
    let mut c = Map::new();
    c.insert("architectures".into(), json!(["LlamaForCausalLM"]));
    c.insert("model_type".into(), json!("llama"));
    c.insert("hidden_size".into(), json!(p.hidden_size));
    c.insert("intermediate_size".into(), json!(p.intermediate_size));
    c.insert("num_hidden_layers".into(), json!(p.num_hidden_layers));
    c.insert("num_attention_heads".into(), json!(p.num_attention_heads));
    c.insert("num_key_value_heads".into(), json!(p.num_key_value_heads));
    c.insert("head_dim".into(), json!(p.head_dim));
    c.insert("hidden_act".into(), json!("silu"));
    c.insert("rms_norm_eps".into(), f32_json(p.rms_norm_eps));
    c.insert("rope_theta".into(), f32_json(p.rope_theta));
    c.insert("rope_scaling".into(), Value::Null);
    c.insert(
        "max_position_embeddings".into(),
        json!(p.max_position_embeddings),
    );
    c.insert("vocab_size".into(), json!(p.vocab_size));
    c.insert("tie_word_embeddings".into(), json!(tied));
    c.insert("attention_bias".into(), json!(attention_bias));
    c.insert("mlp_bias".into(), json!(false));
    for (key, id) in [
        ("bos_token_id", tok.bos_token_id),
        ("eos_token_id", tok.eos_token_id),
        ("pad_token_id", tok.pad_token_id),
    ] {
        if let Some(id) = id {
            c.insert(key.into(), json!(id));
        }
    }
    c.insert("torch_dtype".into(), json!(dtype.torch_dtype()));
    c.insert("use_cache".into(), json!(true));
    Value::Object(c)
}

/// One tensor to write: where it comes from and what it becomes.
struct PlannedTensor<'a> {
    info: &'a TensorInfo,
    hf_name: String,
    /// Row-major shape.
    shape: Vec<usize>,
    /// Heads to un-permute rows over, for Q and K.
    unpermute_heads: Option<usize>,
}

fn plan_tensors<'a>(
    file: &'a GgufFile,
    p: &LlamaParams,
) -> Result<Vec<PlannedTensor<'a>>, GgufError> {
    let path = file.path();
    let mut plan = Vec::with_capacity(file.tensors().len());
    for info in file.tensors() {
        let name = &info.name;
        let Some(hf) = hf_name(name) else {
            let hint = if name == "rope_freqs.weight" {
                " (Llama 3 RoPE frequency factors are not supported yet)"
            } else {
                ""
            };
            return Err(invalid(
                path,
                format!("tensor '{name}' has no Hugging Face Llama name{hint}"),
            ));
        };
        if !info.ggml_type.can_dequantize() {
            return Err(GgufError::UnsupportedType {
                path: path.to_path_buf(),
                tensor: name.clone(),
                ggml_type: info.ggml_type.name(),
            });
        }
        let shape = info
            .shape()
            .into_iter()
            .map(usize::try_from)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| GgufError::SizeOverflow {
                path: path.to_path_buf(),
                tensor: name.clone(),
            })?;
        let heads = match row_permutation(name) {
            RowPermutation::None => None,
            RowPermutation::Query => Some(p.num_attention_heads),
            RowPermutation::Key => Some(p.num_key_value_heads),
        };
        let unpermute_heads = match heads {
            None => None,
            Some(h) => {
                let rows = shape.first().copied().unwrap_or(1) as u64;
                if h == 0 || !rows.is_multiple_of(h) || !(rows / h).is_multiple_of(2) {
                    return Err(invalid(path, format!("tensor '{name}': {rows} rows cannot be split into {h} heads of an even size")));
                }
                usize::try_from(h).ok()
            }
        };
        if let Some(want) = expected_shape(name, p) {
            let got: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
            if got != want {
                return Err(invalid(path, format!("tensor '{name}' has shape {got:?}, the model's hyper-parameters say {want:?}")));
            }
        }
        plan.push(PlannedTensor {
            info,
            hf_name: hf,
            shape,
            unpermute_heads,
        });
    }
    let mut required = vec![
        "token_embd.weight".to_string(),
        "output_norm.weight".to_string(),
    ];
    for i in 0..p.num_hidden_layers {
        for m in [
            "attn_norm",
            "attn_q",
            "attn_k",
            "attn_v",
            "attn_output",
            "ffn_norm",
            "ffn_gate",
            "ffn_up",
            "ffn_down",
        ] {
            required.push(format!("blk.{i}.{m}.weight"));
        }
    }
    if let Some(missing) = required.iter().find(|n| file.header().tensor(n).is_none()) {
        return Err(invalid(
            path,
            format!(
                "tensor '{missing}' is missing (a llama model with {} layers needs it)",
                p.num_hidden_layers
            ),
        ));
    }
    Ok(plan)
}

/// The row-major shape the hyper-parameters imply for a Llama tensor (`None`: not checked).
fn expected_shape(gguf_name: &str, p: &LlamaParams) -> Option<Vec<u64>> {
    let (h, q, kv, f, v) = (
        p.hidden_size,
        p.num_attention_heads.checked_mul(p.head_dim)?,
        p.num_key_value_heads.checked_mul(p.head_dim)?,
        p.intermediate_size,
        p.vocab_size,
    );
    let module = gguf_name.strip_suffix(".weight")?;
    let module = match module.strip_prefix("blk.") {
        Some(rest) => rest.split_once('.')?.1,
        None => module,
    };
    Some(match module {
        "token_embd" | "output" => vec![v, h],
        "output_norm" | "attn_norm" | "ffn_norm" => vec![h],
        "attn_q" => vec![q, h],
        "attn_k" | "attn_v" => vec![kv, h],
        "attn_output" => vec![h, q],
        "ffn_gate" | "ffn_up" => vec![f, h],
        "ffn_down" => vec![h, f],
        _ => return None,
    })
}

/// Dequantizes, un-permutes and encodes one planned tensor.
fn materialize(
    file: &GgufFile,
    t: &PlannedTensor<'_>,
    dtype: ImportDtype,
) -> Result<Vec<u8>, GgufError> {
    let path = file.path();
    let bytes = file.tensor_bytes(t.info)?;
    let n = usize::try_from(t.info.n_elems).map_err(|_| GgufError::SizeOverflow {
        path: path.to_path_buf(),
        tensor: t.info.name.clone(),
    })?;
    let mut values = vec![0f32; n];
    dequantize_to_f32(t.info.ggml_type, bytes, &mut values)
        .map_err(|e| e.at(path, &t.info.name))?;
    if let Some(heads) = t.unpermute_heads {
        let rows = t.shape.first().copied().unwrap_or(1);
        let cols = t.shape.iter().skip(1).product::<usize>();
        values = unpermute_rows(&values, rows, cols, heads)
            .map_err(|e| invalid(path, format!("tensor '{}': {e}", t.info.name)))?;
    }
    Ok(match dtype {
        ImportDtype::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ImportDtype::Bf16 => values
            .iter()
            .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
            .collect(),
    })
}

/// A tensor whose bytes are produced when the safetensors writer asks for them, so that only one
/// tensor is in memory at a time. `View::data` cannot fail, so a failure is parked in `failure` and
/// checked after the write (the output is then discarded).
struct LazyTensor<'a> {
    file: &'a GgufFile,
    planned: &'a PlannedTensor<'a>,
    dtype: ImportDtype,
    failure: &'a RefCell<Option<GgufError>>,
}

impl View for LazyTensor<'_> {
    fn dtype(&self) -> Dtype {
        match self.dtype {
            ImportDtype::Bf16 => Dtype::BF16,
            ImportDtype::F32 => Dtype::F32,
        }
    }

    fn shape(&self) -> &[usize] {
        &self.planned.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        match materialize(self.file, self.planned, self.dtype) {
            Ok(bytes) if bytes.len() == self.data_len() => Cow::Owned(bytes),
            Ok(_) => {
                self.failure.borrow_mut().get_or_insert_with(|| {
                    invalid(
                        self.file.path(),
                        format!("tensor '{}': encoded size mismatch", self.planned.info.name),
                    )
                });
                Cow::Owned(vec![0; self.data_len()])
            }
            Err(e) => {
                self.failure.borrow_mut().get_or_insert(e);
                Cow::Owned(vec![0; self.data_len()])
            }
        }
    }

    fn data_len(&self) -> usize {
        // n_elems fitted in usize when planned; the product with 2 or 4 is checked by the plan's
        // total below, so saturating here only guards an impossible case.
        (self.planned.info.n_elems as usize).saturating_mul(self.dtype.bytes_per_elem())
    }
}

/// A directory being built beside its final name; removed on drop unless committed.
struct StagingDir {
    tmp: PathBuf,
    committed: bool,
}

impl StagingDir {
    fn create(dst: &Path, force: bool) -> Result<Self, GgufError> {
        if dst.exists() && !force {
            return Err(GgufError::OutputExists {
                path: dst.to_path_buf(),
            });
        }
        let name = dst
            .file_name()
            .ok_or_else(|| invalid(dst, "output path has no directory name".into()))?;
        let parent = match dst.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = parent.join(format!(
            ".{}.ue8-import-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let io = |source| GgufError::Io {
            path: tmp.clone(),
            source,
        };
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io)?;
        }
        fs::create_dir_all(&tmp).map_err(io)?;
        Ok(Self {
            tmp,
            committed: false,
        })
    }

    fn write_json(&self, name: &str, value: &Value) -> Result<(), GgufError> {
        let path = self.tmp.join(name);
        let mut text = serde_json::to_string_pretty(value).map_err(|e| GgufError::Write {
            path: path.clone(),
            problem: e.to_string(),
        })?;
        text.push('\n');
        fs::write(&path, text).map_err(|source| GgufError::Io { path, source })
    }

    fn commit(mut self, dst: &Path) -> Result<(), GgufError> {
        let io = |source| GgufError::Io {
            path: dst.to_path_buf(),
            source,
        };
        if dst.is_dir() {
            fs::remove_dir_all(dst).map_err(io)?;
        } else if dst.exists() {
            fs::remove_file(dst).map_err(io)?;
        }
        fs::rename(&self.tmp, dst).map_err(io)?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        if !self.committed {
            // Best effort: a failed cleanup leaves a hidden directory, never a wrong OUTPUT_DIR.
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

/// Imports `src` (a GGUF file) into the directory `dst`. The directory is built under a temporary
/// name beside `dst` and renamed when complete, so an interrupted run leaves nothing under `dst`.
pub fn import_gguf(
    src: &Path,
    dst: &Path,
    opts: &ImportOptions,
) -> Result<ImportReport, GgufError> {
    let file = GgufFile::open(src)?;
    let h = file.header();
    let arch_v = h
        .get("general.architecture")
        .ok_or_else(|| GgufError::MissingKey {
            path: src.to_path_buf(),
            key: "general.architecture".into(),
        })?;
    let arch = arch_v.as_str().ok_or_else(|| GgufError::WrongKeyType {
        path: src.to_path_buf(),
        key: "general.architecture".into(),
        expected: "a string",
        found: arch_v.type_name().into(),
    })?;
    if arch != "llama" {
        return Err(GgufError::UnsupportedArchitecture {
            path: src.to_path_buf(),
            arch: arch.to_string(),
        });
    }
    let tok = build_tokenizer(h, src)?;
    let params = llama_params(h, src, arch, tok.vocab_size)?;
    let plan = plan_tensors(&file, &params)?;
    // Every output byte count must fit: n_elems * 4 checked once here.
    for t in &plan {
        t.info
            .n_elems
            .checked_mul(4)
            .and_then(|b| usize::try_from(b).ok())
            .ok_or_else(|| GgufError::SizeOverflow {
                path: src.to_path_buf(),
                tensor: t.info.name.clone(),
            })?;
    }
    let tied = h.tensor("output.weight").is_none();
    let attention_bias = h.tensors.iter().any(|t| t.name.ends_with(".attn_q.bias"));

    let staging = StagingDir::create(dst, opts.force)?;
    let st_path = staging.tmp.join("model.safetensors");
    let failure = RefCell::new(None);
    let views = plan.iter().map(|planned| {
        (
            planned.hf_name.clone(),
            LazyTensor {
                file: &file,
                planned,
                dtype: opts.dtype,
                failure: &failure,
            },
        )
    });
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::tensor::serialize_to_file(views, Some(metadata), &st_path).map_err(|e| {
        GgufError::Write {
            path: st_path.clone(),
            problem: e.to_string(),
        }
    })?;
    if let Some(e) = failure.into_inner() {
        return Err(e);
    }

    staging.write_json(
        "config.json",
        &config_json(&params, &tok, tied, attention_bias, opts.dtype),
    )?;
    // The safetensors crate creates its file owner-only; give it the permissions the JSON files got
    // from the user's umask, like every other file of the directory.
    let json_perms = fs::metadata(staging.tmp.join("config.json"))
        .map_err(|source| GgufError::Io {
            path: staging.tmp.join("config.json"),
            source,
        })?
        .permissions();
    fs::set_permissions(&st_path, json_perms).map_err(|source| GgufError::Io {
        path: st_path.clone(),
        source,
    })?;
    staging.write_json("tokenizer.json", &tok.tokenizer_json)?;
    staging.write_json("tokenizer_config.json", &tok.tokenizer_config)?;
    let mut gen = Map::new();
    for (key, id) in [
        ("bos_token_id", tok.bos_token_id),
        ("eos_token_id", tok.eos_token_id),
    ] {
        if let Some(id) = id {
            gen.insert(key.into(), json!(id));
        }
    }
    staging.write_json("generation_config.json", &Value::Object(gen))?;
    staging.commit(dst)?;

    let mut types: HashMap<&str, usize> = HashMap::new();
    for t in file.tensors() {
        *types.entry(t.ggml_type.name()).or_default() += 1;
    }
    let mut source_types: Vec<(String, usize)> =
        types.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    source_types.sort();
    Ok(ImportReport {
        output_dir: dst.to_path_buf(),
        architecture: arch.to_string(),
        tensors: plan.len(),
        parameters: plan.iter().map(|t| t.info.n_elems).sum(),
        pre_tokenizer: h
            .get("tokenizer.ggml.pre")
            .and_then(MetadataValue::as_str)
            .unwrap_or("default")
            .to_string(),
        files: [
            "model.safetensors",
            "config.json",
            "tokenizer.json",
            "tokenizer_config.json",
            "generation_config.json",
        ]
        .map(String::from)
        .to_vec(),
        source_types,
    })
}
