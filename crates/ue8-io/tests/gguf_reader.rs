//! The GGUF reader on the committed fixtures and on hand-built bad files: one test per error variant,
//! every truncation of a real header, and random corruption (never a panic).

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use ue8_io::gguf::{GgmlType, GgufError, GgufFile, GgufHeader, MetadataValue};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gguf")
        .join(name)
}

/// A minimal GGUF writer for tests (independent of the reader).
#[derive(Default)]
struct Builder {
    version: u32,
    kv: Vec<u8>,
    kv_count: u64,
    infos: Vec<u8>,
    tensor_count: u64,
    data: Vec<u8>,
    alignment: usize,
}

fn put_str(buf: &mut Vec<u8>, s: &[u8]) {
    buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
    buf.extend_from_slice(s);
}

impl Builder {
    fn new() -> Self {
        Self {
            version: 3,
            alignment: 32,
            ..Self::default()
        }
    }
    fn kv_raw(mut self, key: &str, type_id: u32, value: &[u8]) -> Self {
        put_str(&mut self.kv, key.as_bytes());
        self.kv.extend_from_slice(&type_id.to_le_bytes());
        self.kv.extend_from_slice(value);
        self.kv_count += 1;
        self
    }
    fn kv_u32(self, key: &str, v: u32) -> Self {
        self.kv_raw(key, 4, &v.to_le_bytes())
    }
    fn kv_str(self, key: &str, v: &str) -> Self {
        let mut b = Vec::new();
        put_str(&mut b, v.as_bytes());
        self.kv_raw(key, 8, &b)
    }
    fn tensor_raw(mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> Self {
        put_str(&mut self.infos, name.as_bytes());
        self.infos
            .extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for d in dims {
            self.infos.extend_from_slice(&d.to_le_bytes());
        }
        self.infos.extend_from_slice(&ty.to_le_bytes());
        self.infos.extend_from_slice(&offset.to_le_bytes());
        self.tensor_count += 1;
        self
    }
    /// Appends `bytes` to the data section (aligned) and a tensor info pointing at them.
    fn tensor(mut self, name: &str, dims: &[u64], ty: GgmlType, bytes: &[u8]) -> Self {
        while !self.data.len().is_multiple_of(self.alignment) {
            self.data.push(0);
        }
        let offset = self.data.len() as u64;
        self.data.extend_from_slice(bytes);
        self.tensor_raw(name, dims, ty.id(), offset)
    }
    fn counts(mut self, tensors: u64, kv: u64) -> Self {
        self.tensor_count = tensors;
        self.kv_count = kv;
        self
    }
    fn build(&self) -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend_from_slice(&self.version.to_le_bytes());
        b.extend_from_slice(&self.tensor_count.to_le_bytes());
        b.extend_from_slice(&self.kv_count.to_le_bytes());
        b.extend_from_slice(&self.kv);
        b.extend_from_slice(&self.infos);
        while !b.len().is_multiple_of(self.alignment) {
            b.push(0);
        }
        b.extend_from_slice(&self.data);
        b
    }
}

fn parse(bytes: &[u8]) -> Result<GgufHeader, GgufError> {
    GgufHeader::parse(bytes, Path::new("test.gguf"))
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn reads_the_tiny_llama_fixture() {
    let f = GgufFile::open(fixture("tiny-llama.gguf")).unwrap();
    let h = f.header();
    assert_eq!(h.version, 3);
    assert_eq!(h.alignment, 32);
    assert_eq!(
        h.get("general.architecture")
            .and_then(MetadataValue::as_str),
        Some("llama")
    );
    assert_eq!(
        h.get("llama.embedding_length")
            .and_then(MetadataValue::as_u64),
        Some(64)
    );
    assert_eq!(
        h.get("llama.rope.freq_base")
            .and_then(MetadataValue::as_f64),
        Some(50000.0)
    );
    assert_eq!(
        h.get("tokenizer.ggml.add_bos_token")
            .and_then(MetadataValue::as_bool),
        Some(true)
    );
    let tokens = h
        .get("tokenizer.ggml.tokens")
        .and_then(|v| v.as_array())
        .and_then(|a| a.as_strings())
        .unwrap();
    assert_eq!(tokens.len(), 272);
    assert_eq!(tokens[1], "<|im_start|>");
    let q = h.tensor("blk.0.attn_q.weight").unwrap();
    assert_eq!(q.ggml_type, GgmlType::Q4_1);
    assert_eq!(q.dims, vec![64, 64]);
    let k = h.tensor("blk.0.attn_k.weight").unwrap();
    assert_eq!(
        (k.ggml_type, k.dims.clone(), k.shape()),
        (GgmlType::F16, vec![64, 32], vec![32, 64])
    );
    assert_eq!(k.n_bytes, 32 * 64 * 2);
    let down = h.tensor("blk.1.ffn_down.weight").unwrap();
    assert_eq!(
        (down.ggml_type, down.shape()),
        (GgmlType::Q6K, vec![64, 256])
    );
    assert_eq!(down.n_bytes, 64 * 210);
    assert_eq!(f.tensor_bytes(down).unwrap().len(), 64 * 210);
    let norm = h.tensor("output_norm.weight").unwrap();
    let values = f.dequantize(norm).unwrap();
    assert_eq!(values.len(), 64);
    assert!(values.iter().all(|v| (0.5..1.5).contains(v)));
    assert_eq!(h.tensors.len(), 2 + 9 * 2 + 1);
}

#[test]
fn smollm2_shapes_when_present() {
    let p = dirs_home().join(".cache/ue8-data/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !p.exists() {
        eprintln!("skipping: {} not fetched", p.display());
        return;
    }
    let f = GgufFile::open(&p).unwrap();
    assert_eq!(f.tensors().len(), 272);
    let k = f.header().tensor("blk.0.attn_k.weight").unwrap();
    assert_eq!(k.shape(), vec![192, 576]);
    assert_eq!(
        f.header().tensor("token_embd.weight").unwrap().ggml_type,
        GgmlType::Q8_0
    );
}

fn dirs_home() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
}

#[test]
fn minimal_valid_file() {
    let b = Builder::new()
        .kv_u32("general.alignment", 64)
        .kv_raw("v.u8", 0, &[7])
        .kv_raw("v.i8", 1, &[0xFF])
        .kv_raw("v.u16", 2, &513u16.to_le_bytes())
        .kv_raw("v.i16", 3, &(-2i16).to_le_bytes())
        .kv_raw("v.i32", 5, &(-3i32).to_le_bytes())
        .kv_raw("v.f32", 6, &1.5f32.to_le_bytes())
        .kv_raw("v.bool", 7, &[1])
        .kv_raw("v.u64", 10, &u64::MAX.to_le_bytes())
        .kv_raw("v.i64", 11, &(-4i64).to_le_bytes())
        .kv_raw("v.f64", 12, &2.25f64.to_le_bytes())
        .kv_raw(
            "v.arr",
            9,
            &[
                &4u32.to_le_bytes()[..],
                &2u64.to_le_bytes(),
                &1u32.to_le_bytes(),
                &2u32.to_le_bytes(),
            ]
            .concat(),
        )
        .kv_raw(
            "v.nested",
            9,
            &[
                &9u32.to_le_bytes()[..],
                &1u64.to_le_bytes(),
                &0u32.to_le_bytes(),
                &1u64.to_le_bytes(),
                &[9],
            ]
            .concat(),
        );
    let mut b = b;
    b.alignment = 64;
    let b = b
        .tensor("a", &[3], GgmlType::F32, &f32_bytes(&[1.0, 2.0, 3.0]))
        .tensor("b", &[0, 5], GgmlType::F32, &[]);
    let bytes = b.build();
    let h = parse(&bytes).unwrap();
    assert_eq!(h.alignment, 64);
    assert_eq!(h.data_offset % 64, 0);
    assert_eq!(h.get("v.u8"), Some(&MetadataValue::U8(7)));
    assert_eq!(h.get("v.i8"), Some(&MetadataValue::I8(-1)));
    assert_eq!(h.get("v.u16").and_then(MetadataValue::as_u64), Some(513));
    assert_eq!(h.get("v.i16"), Some(&MetadataValue::I16(-2)));
    assert_eq!(h.get("v.i32").and_then(MetadataValue::as_u64), None);
    assert_eq!(h.get("v.f32").and_then(MetadataValue::as_f64), Some(1.5));
    assert_eq!(h.get("v.bool").and_then(MetadataValue::as_bool), Some(true));
    assert_eq!(
        h.get("v.u64").and_then(MetadataValue::as_u64),
        Some(u64::MAX)
    );
    assert_eq!(h.get("v.i64"), Some(&MetadataValue::I64(-4)));
    assert_eq!(h.get("v.f64").and_then(MetadataValue::as_f64), Some(2.25));
    assert_eq!(
        h.get("v.arr")
            .and_then(|v| v.as_array())
            .and_then(|a| a.to_i64_vec()),
        Some(vec![1, 2])
    );
    assert_eq!(
        h.get("v.nested")
            .and_then(|v| v.as_array())
            .map(|a| a.len()),
        Some(1)
    );
    assert_eq!(h.tensors[1].n_elems, 0);
    assert_eq!(h.tensors[1].shape(), vec![5, 0]);
}

fn err(bytes: &[u8]) -> GgufError {
    match parse(bytes) {
        Ok(_) => panic!("parsed a bad file"),
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.starts_with("test.gguf: "),
                "error does not name the file: {msg}"
            );
            e
        }
    }
}

#[test]
fn not_gguf() {
    assert!(matches!(err(b"GGML\x03\0\0\0"), GgufError::NotGguf { .. }));
    assert!(matches!(err(b""), GgufError::Truncated { .. }));
}

#[test]
fn unsupported_versions() {
    for v in [1u32, 4, 0x0300_0000] {
        let mut b = Builder::new();
        b.version = v;
        assert!(
            matches!(err(&b.build()), GgufError::UnsupportedVersion { version, .. } if version == v)
        );
    }
    let mut b = Builder::new();
    b.version = 2;
    assert!(parse(&b.build()).is_ok());
}

#[test]
fn every_truncation_of_a_real_header_is_an_error() {
    let bytes = std::fs::read(fixture("tiny-llama-tied.gguf")).unwrap();
    let full = parse(&bytes).unwrap();
    let data_offset = full.data_offset as usize;
    // Every cut inside the header (step 7 keeps the test fast; the fuzzer covers the rest).
    for cut in (0..data_offset).step_by(7) {
        assert!(parse(&bytes[..cut]).is_err(), "cut at {cut} parsed");
    }
    // A cut inside the data section names the tensor that no longer fits.
    let e = err(&bytes[..bytes.len() - 1]);
    assert!(matches!(e, GgufError::TensorOutOfFile { .. }), "{e}");
}

#[test]
fn huge_counts_are_refused_before_allocating() {
    let e = err(&Builder::new().counts(u64::MAX, 0).build());
    assert!(matches!(e, GgufError::OverLimit { .. }), "{e}");
    let e = err(&Builder::new().counts(0, u64::MAX).build());
    assert!(matches!(e, GgufError::OverLimit { .. }), "{e}");
    // Below the cap but more than the file could hold.
    let e = err(&Builder::new().counts(1000, 0).build());
    assert!(matches!(e, GgufError::Truncated { .. }), "{e}");
    let arr = [&8u32.to_le_bytes()[..], &(1u64 << 27).to_le_bytes()].concat();
    let e = err(&Builder::new().kv_raw("a", 9, &arr).build());
    assert!(matches!(e, GgufError::Truncated { .. }), "{e}");
    let mut s = Vec::new();
    s.extend_from_slice(&u64::MAX.to_le_bytes());
    let e = err(&Builder::new().kv_raw("s", 8, &s).build());
    assert!(matches!(e, GgufError::OverLimit { .. }), "{e}");
}

#[test]
fn deep_array_nesting_is_refused() {
    let mut v = Vec::new();
    for _ in 0..20 {
        v.extend_from_slice(&9u32.to_le_bytes());
        v.extend_from_slice(&1u64.to_le_bytes());
    }
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&0u64.to_le_bytes());
    assert!(matches!(
        err(&Builder::new().kv_raw("deep", 9, &v).build()),
        GgufError::OverLimit { .. }
    ));
}

#[test]
fn bad_utf8_names_the_key() {
    let mut v = Vec::new();
    put_str(&mut v, &[0xFF, 0xFE]);
    let e = err(&Builder::new().kv_raw("general.name", 8, &v).build());
    assert!(matches!(e, GgufError::BadUtf8 { .. }));
    assert!(e.to_string().contains("general.name"), "{e}");
}

#[test]
fn unknown_value_type() {
    let e = err(&Builder::new().kv_raw("k", 13, &[0; 8]).build());
    assert!(matches!(e, GgufError::UnknownValueType { type_id: 13, .. }));
    let e = err(&Builder::new()
        .kv_raw(
            "k",
            9,
            &[&99u32.to_le_bytes()[..], &0u64.to_le_bytes()].concat(),
        )
        .build());
    assert!(matches!(e, GgufError::UnknownValueType { type_id: 99, .. }));
}

#[test]
fn bad_bool_byte() {
    assert!(matches!(
        err(&Builder::new().kv_raw("b", 7, &[2]).build()),
        GgufError::Invalid { .. }
    ));
}

#[test]
fn duplicate_key() {
    let e = err(&Builder::new().kv_u32("k", 1).kv_u32("k", 2).build());
    assert!(matches!(e, GgufError::DuplicateKey { key, .. } if key == "k"));
}

#[test]
fn bad_alignment() {
    for a in [0u32, 3, 48] {
        let e = err(&Builder::new().kv_u32("general.alignment", a).build());
        assert!(matches!(e, GgufError::BadAlignment { .. }), "{a}: {e}");
    }
    let e = err(&Builder::new().kv_str("general.alignment", "32").build());
    assert!(matches!(e, GgufError::WrongKeyType { .. }));
}

#[test]
fn duplicate_tensor() {
    let b = Builder::new()
        .tensor("t", &[1], GgmlType::F32, &[0; 4])
        .tensor("t", &[1], GgmlType::F32, &[0; 4]);
    assert!(matches!(err(&b.build()), GgufError::DuplicateTensor { tensor, .. } if tensor == "t"));
}

#[test]
fn too_many_dims() {
    let b = Builder::new().tensor_raw("t", &[1, 1, 1, 1, 1], 0, 0);
    assert!(matches!(
        err(&b.build()),
        GgufError::BadDimCount { n_dims: 5, .. }
    ));
}

#[test]
fn unknown_ggml_type() {
    let b = Builder::new().tensor_raw("t", &[32], 5, 0);
    assert!(matches!(
        err(&b.build()),
        GgufError::UnknownGgmlType { type_id: 5, .. }
    ));
}

#[test]
fn row_not_block_aligned() {
    let b = Builder::new().tensor("t", &[33, 2], GgmlType::Q8_0, &[0; 34 * 2]);
    let e = err(&b.build());
    assert!(
        matches!(
            e,
            GgufError::RowNotBlockAligned {
                row: 33,
                block: 32,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn size_overflow() {
    let b = Builder::new().tensor_raw("t", &[1 << 40, 1 << 40], 0, 0);
    assert!(matches!(err(&b.build()), GgufError::SizeOverflow { .. }));
    let b = Builder::new().tensor_raw("t", &[u64::MAX], 0, 0);
    assert!(matches!(err(&b.build()), GgufError::SizeOverflow { .. }));
    let b = Builder::new().tensor_raw("t", &[1 << 62], 0, 0); // bytes overflow
    assert!(matches!(err(&b.build()), GgufError::SizeOverflow { .. }));
}

#[test]
fn tensor_misaligned() {
    let b = Builder::new()
        .tensor("a", &[1], GgmlType::F32, &[0; 4])
        .tensor_raw("b", &[1], 0, 4);
    assert!(matches!(
        err(&b.build()),
        GgufError::TensorMisaligned { offset: 4, .. }
    ));
}

#[test]
fn tensor_out_of_file() {
    let b = Builder::new().tensor("a", &[8], GgmlType::F32, &[0; 4]);
    let e = err(&b.build());
    assert!(matches!(e, GgufError::TensorOutOfFile { .. }));
    assert!(e.to_string().contains("'a'"), "{e}");
    let b = Builder::new().tensor_raw("a", &[1], 0, u64::MAX - 31);
    assert!(matches!(
        err(&b.build()),
        GgufError::SizeOverflow { .. } | GgufError::TensorOutOfFile { .. }
    ));
}

#[test]
fn tensors_overlap() {
    let b = Builder::new()
        .tensor("a", &[16], GgmlType::F32, &[0; 64])
        .tensor_raw("b", &[8], 0, 32);
    let e = err(&b.build());
    assert!(matches!(e, GgufError::TensorsOverlap { .. }), "{e}");
}

#[test]
fn open_missing_file_names_it() {
    let e = match GgufFile::open("/nonexistent/x.gguf") {
        Err(e) => e,
        Ok(_) => panic!("opened a missing file"),
    };
    assert!(matches!(e, GgufError::Io { .. }));
    assert!(e.to_string().contains("/nonexistent/x.gguf"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Random byte flips in a real file give a header or an error, never a panic.
    #[test]
    fn corrupted_files_never_panic(flips in prop::collection::vec((0usize..4096, any::<u8>()), 1..8)) {
        let mut bytes = std::fs::read(fixture("tiny-llama-tied.gguf")).unwrap();
        let n = bytes.len();
        for (pos, val) in flips {
            bytes[pos % n] = val;
        }
        let _ = parse(&bytes);
    }
}

/// Fuzzer find (gguf_header, 2026-11-25): a header that ends before its alignment padding, with one
/// zero-element tensor at offset 0. The tensor "starts" past the end of the file; it is empty, so the
/// file is valid and asking for its bytes gives an empty slice instead of an error.
#[test]
fn empty_tensor_past_the_end_regression() {
    let p = fixture("fuzz-crash-empty-tensor-past-eof.gguf");
    let f = GgufFile::open(&p).unwrap();
    let h = f.header();
    assert!(h.data_offset > std::fs::metadata(&p).unwrap().len());
    assert_eq!(h.tensors.len(), 1);
    assert_eq!(h.tensors[0].n_bytes, 0);
    assert_eq!(f.tensor_bytes(&h.tensors[0]).unwrap(), &[] as &[u8]);
    assert_eq!(f.dequantize(&h.tensors[0]).unwrap(), Vec::<f32>::new());
}
