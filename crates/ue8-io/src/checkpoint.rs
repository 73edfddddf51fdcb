//! Read side: a checkpoint is one `.safetensors` file or a model directory (one file, or shards listed
//! in `model.safetensors.index.json`), every file memory-mapped and its header validated on open.

use crate::header::{parse_header, Header, TensorInfo};
use crate::{Dtype, IoError};
use memmap2::Mmap;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// The index file name Hugging Face uses for sharded checkpoints.
pub const INDEX_FILE: &str = "model.safetensors.index.json";
/// The single-file checkpoint name.
pub const SINGLE_FILE: &str = "model.safetensors";

/// One memory-mapped safetensors file and its validated header.
pub struct SafetensorsFile {
    path: PathBuf,
    mmap: Option<Mmap>,
    header: Header,
}

impl SafetensorsFile {
    /// Maps `path` and validates its header.
    pub fn open(path: &Path) -> Result<Self, IoError> {
        let file = File::open(path).map_err(|e| IoError::io(path, e))?;
        let len = file.metadata().map_err(|e| IoError::io(path, e))?.len();
        if len < 8 {
            return Err(IoError::TooShort {
                path: path.to_path_buf(),
                len,
            });
        }
        // SAFETY: the map is read-only and private to this process. ue8 never writes its inputs;
        // another process truncating the file while we read it would fault (SIGBUS), the same contract
        // as every mmap-based safetensors reader. Contents are validated before any use.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| IoError::io(path, e))?;
        let header = parse_header(path, &mmap)?;
        Ok(SafetensorsFile {
            path: path.to_path_buf(),
            mmap: Some(mmap),
            header,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The validated header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Raw bytes of a tensor of this file's header.
    pub fn bytes_of(&self, info: &TensorInfo) -> &[u8] {
        let start = self.header.data_start + info.start;
        let end = self.header.data_start + info.end;
        // In range: parse_header checked every end against the file length.
        self.mmap
            .as_deref()
            .and_then(|m| m.get(start as usize..end as usize))
            .unwrap_or_default()
    }
}

/// A borrowed view of one tensor: its header entry and raw little-endian bytes from the mmap.
#[derive(Clone, Copy, Debug)]
pub struct TensorView<'a> {
    pub name: &'a str,
    pub dtype: Dtype,
    pub shape: &'a [usize],
    pub bytes: &'a [u8],
    /// The file holding it.
    pub file: &'a Path,
}

impl TensorView<'_> {
    /// Number of logical elements.
    pub fn numel(&self) -> u64 {
        self.shape.iter().map(|&d| d as u64).product()
    }
}

/// A checkpoint opened for reading. See the crate docs.
pub struct Checkpoint {
    root: PathBuf,
    files: Vec<SafetensorsFile>,
    /// (file index, tensor index in that file's header), in file order then data order.
    entries: Vec<(usize, usize)>,
    by_name: HashMap<String, usize>,
    config: Option<serde_json::Value>,
    index_path: Option<PathBuf>,
}

impl Checkpoint {
    /// Opens a `.safetensors` file or a model directory.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, IoError> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path).map_err(|e| IoError::io(path, e))?;
        if meta.is_file() {
            let f = SafetensorsFile::open(path)?;
            return Self::assemble(path.to_path_buf(), vec![f], None, None);
        }
        let config_path = path.join("config.json");
        let config = if config_path.is_file() {
            Some(read_json(&config_path)?)
        } else {
            None
        };
        let index_path = path.join(INDEX_FILE);
        if index_path.is_file() {
            let (files, expected) = open_index(path, &index_path)?;
            let ck = Self::assemble(path.to_path_buf(), files, config, Some(index_path.clone()))?;
            for (tensor, shard) in &expected {
                match ck.by_name.get(tensor) {
                    Some(&i) => {
                        let (fi, _) = ck.entries[i];
                        let actual = ck.files[fi].path.file_name();
                        if actual != Some(std::ffi::OsStr::new(shard)) {
                            return Err(IoError::BadIndex {
                                path: index_path,
                                problem: format!(
                                    "tensor '{tensor}' is mapped to '{shard}' but found in {}",
                                    ck.files[fi].path.display()
                                ),
                            });
                        }
                    }
                    None => {
                        return Err(IoError::BadIndex {
                            path: index_path,
                            problem: format!(
                                "tensor '{tensor}' is mapped to '{shard}', which does not hold it"
                            ),
                        })
                    }
                }
            }
            return Ok(ck);
        }
        let single = path.join(SINGLE_FILE);
        let paths = if single.is_file() {
            vec![single]
        } else {
            let mut v: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| IoError::io(path, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "safetensors") && p.is_file())
                .collect();
            v.sort();
            v
        };
        if paths.is_empty() {
            return Err(IoError::NoWeights {
                path: path.to_path_buf(),
            });
        }
        let files = paths
            .iter()
            .map(|p| SafetensorsFile::open(p))
            .collect::<Result<Vec<_>, _>>()?;
        Self::assemble(path.to_path_buf(), files, config, None)
    }

    fn assemble(
        root: PathBuf,
        files: Vec<SafetensorsFile>,
        config: Option<serde_json::Value>,
        index_path: Option<PathBuf>,
    ) -> Result<Self, IoError> {
        let mut entries = Vec::new();
        let mut by_name = HashMap::new();
        for (fi, f) in files.iter().enumerate() {
            for (ti, t) in f.header.tensors.iter().enumerate() {
                if let Some(&prev) = by_name.get(&t.name) {
                    let (pf, _): (usize, usize) = entries[prev];
                    return Err(IoError::DuplicateTensor {
                        tensor: t.name.clone(),
                        first: files[pf].path.clone(),
                        second: f.path.clone(),
                    });
                }
                by_name.insert(t.name.clone(), entries.len());
                entries.push((fi, ti));
            }
        }
        Ok(Checkpoint {
            root,
            files,
            entries,
            by_name,
            config,
            index_path,
        })
    }

    /// The path this checkpoint was opened from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// True when opened from a directory (config.json and other files may sit beside the weights).
    pub fn is_dir(&self) -> bool {
        self.root.is_dir()
    }

    /// The safetensors files, in order.
    pub fn files(&self) -> &[SafetensorsFile] {
        &self.files
    }

    /// The index file, when the checkpoint is sharded.
    pub fn index_path(&self) -> Option<&Path> {
        self.index_path.as_deref()
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the checkpoint holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every tensor, in file order then data order.
    pub fn tensors(&self) -> impl Iterator<Item = TensorView<'_>> + '_ {
        self.entries.iter().map(|&(fi, ti)| self.view(fi, ti))
    }

    fn view(&self, fi: usize, ti: usize) -> TensorView<'_> {
        let f = &self.files[fi];
        let t = &f.header.tensors[ti];
        TensorView {
            name: &t.name,
            dtype: t.dtype,
            shape: &t.shape,
            bytes: f.bytes_of(t),
            file: &f.path,
        }
    }

    /// True when a tensor of that name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// One tensor by name.
    pub fn tensor(&self, name: &str) -> Result<TensorView<'_>, IoError> {
        self.get(name).ok_or_else(|| IoError::NoSuchTensor {
            path: self.root.clone(),
            tensor: name.to_string(),
        })
    }

    /// One tensor by name, `None` when absent.
    pub fn get(&self, name: &str) -> Option<TensorView<'_>> {
        let &i = self.by_name.get(name)?;
        let (fi, ti) = self.entries[i];
        Some(self.view(fi, ti))
    }

    /// The `__metadata__` value `key` of the file holding tensor `name`.
    pub fn file_metadata(&self, name: &str, key: &str) -> Option<&str> {
        let &i = self.by_name.get(name)?;
        let (fi, _) = self.entries[i];
        self.files[fi].header.metadata.get(key).map(|s| s.as_str())
    }

    /// config.json, when the checkpoint is a directory that has one.
    pub fn config(&self) -> Option<&serde_json::Value> {
        self.config.as_ref()
    }
}

/// Reads a JSON file, naming it in errors.
pub fn read_json(path: &Path) -> Result<serde_json::Value, IoError> {
    let text = std::fs::read_to_string(path).map_err(|e| IoError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| IoError::BadConfig {
        path: path.to_path_buf(),
        problem: format!("not valid JSON: {e}"),
    })
}

/// Shard names must be plain relative paths inside the model directory.
fn safe_shard_name(name: &str) -> bool {
    let p = Path::new(name);
    !name.is_empty()
        && p.components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

type IndexMap = Vec<(String, String)>;

fn open_index(dir: &Path, index_path: &Path) -> Result<(Vec<SafetensorsFile>, IndexMap), IoError> {
    let v = read_json(index_path)?;
    let bad = |problem: String| IoError::BadIndex {
        path: index_path.to_path_buf(),
        problem,
    };
    let map = v
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| bad("missing 'weight_map' object".into()))?;
    let mut shards: Vec<String> = Vec::new();
    let mut expected = Vec::with_capacity(map.len());
    for (tensor, shard) in map {
        let shard = shard
            .as_str()
            .ok_or_else(|| bad(format!("weight_map['{tensor}'] is not a string")))?;
        if !safe_shard_name(shard) {
            return Err(bad(format!(
                "shard name '{shard}' is not a relative path inside the directory"
            )));
        }
        if !shards.iter().any(|s| s == shard) {
            shards.push(shard.to_string());
        }
        expected.push((tensor.clone(), shard.to_string()));
    }
    shards.sort();
    let mut files = Vec::with_capacity(shards.len());
    for s in &shards {
        let p = dir.join(s);
        if let Err(e) = std::fs::metadata(&p) {
            return Err(IoError::MissingShard {
                index: index_path.to_path_buf(),
                shard: s.clone(),
                source: e,
            });
        }
        files.push(SafetensorsFile::open(&p)?);
    }
    Ok((files, expected))
}
