//! Every bad input of issue 4 that the reader must name: truncated file, header length past the end,
//! header not JSON, overlapping / out-of-file offsets, dtype x shape != byte length, unknown dtype,
//! missing shard; plus good files written by our writer and by hand.

use std::collections::BTreeMap;
use std::path::Path;
use ue8_io::{Checkpoint, Dtype, IoError, SafetensorsWriter, TensorSpec};

fn raw_file(header: &str, data: &[u8]) -> Vec<u8> {
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header.as_bytes());
    v.extend_from_slice(data);
    v
}

fn open_bytes(bytes: &[u8]) -> Result<Checkpoint, IoError> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.safetensors");
    std::fs::write(&p, bytes).unwrap();
    Checkpoint::open(&p)
}

fn message(r: Result<Checkpoint, IoError>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn good_hand_written_file_reads_back() {
    let h = r#"{"__metadata__":{"format":"pt"},"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]},"a":{"dtype":"F4","shape":[2,4],"data_offsets":[0,4]}}"#;
    let ck = open_bytes(&raw_file(h, &[1, 2, 3, 4, 5, 6])).unwrap();
    let names: Vec<&str> = ck.tensors().map(|t| t.name).collect();
    assert_eq!(names, ["a", "b"]); // data order
    assert_eq!(ck.tensor("b").unwrap().bytes, &[5, 6]);
    assert_eq!(ck.tensor("a").unwrap().dtype, Dtype::F4);
    assert_eq!(ck.file_metadata("a", "format"), Some("pt"));
    assert!(matches!(ck.tensor("zz"), Err(IoError::NoSuchTensor { .. })));
}

#[test]
fn truncated_file() {
    let m = message(open_bytes(&[1, 2, 3]));
    assert!(
        m.contains("x.safetensors") && m.contains("too short"),
        "{m}"
    );
    let h = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    let m = message(open_bytes(&raw_file(h, &[0; 5])));
    assert!(m.contains("truncated"), "{m}");
}

#[test]
fn header_length_past_end() {
    let mut f = raw_file("{}", &[]);
    f[0] = 200;
    let e = open_bytes(&f).err().unwrap();
    assert!(
        matches!(
            e,
            IoError::HeaderPastEnd {
                header_len: 200,
                ..
            }
        ),
        "{e}"
    );
    let mut f = raw_file("{}", &[]);
    f[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        open_bytes(&f).err().unwrap(),
        IoError::HeaderTooLarge { .. }
    ));
}

#[test]
fn header_not_json() {
    let e = open_bytes(&raw_file("{not json", &[])).err().unwrap();
    assert!(matches!(e, IoError::HeaderNotJson { .. }), "{e}");
    let e = open_bytes(&raw_file("[1,2]", &[])).err().unwrap();
    assert!(matches!(e, IoError::BadHeader { .. }), "{e}");
    let mut f = raw_file("{\"a\":1} ", &[]);
    f[9] = 0xFF; // invalid UTF-8
    assert!(matches!(
        open_bytes(&f).err().unwrap(),
        IoError::HeaderNotJson { .. }
    ));
}

#[test]
fn overlapping_and_out_of_file_offsets() {
    let h = r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}"#;
    let e = open_bytes(&raw_file(h, &[0; 6])).err().unwrap();
    assert!(
        matches!(&e, IoError::BadOffsets { tensor, .. } if tensor == "b"),
        "{e}"
    );
    assert!(e.to_string().contains("overlap"));
    let h = r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}}"#;
    let e = open_bytes(&raw_file(h, &[0; 6])).err().unwrap();
    assert!(e.to_string().contains("past the end"), "{e}");
    let h = r#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}"#;
    let e = open_bytes(&raw_file(h, &[0; 4])).err().unwrap();
    assert!(e.to_string().contains("gap"), "{e}");
    let h = r#"{"a":{"dtype":"U8","shape":[0],"data_offsets":[3,1]}}"#;
    let e = open_bytes(&raw_file(h, &[0; 4])).err().unwrap();
    assert!(matches!(e, IoError::BadOffsets { .. }), "{e}");
}

#[test]
fn dtype_times_shape_mismatch() {
    let h = r#"{"w":{"dtype":"BF16","shape":[3],"data_offsets":[0,4]}}"#;
    let e = open_bytes(&raw_file(h, &[0; 4])).err().unwrap();
    assert!(
        matches!(&e, IoError::SizeMismatch { tensor, expected: 6, got: 4, .. } if tensor == "w"),
        "{e}"
    );
    let h = r#"{"w":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}"#;
    let e = open_bytes(&raw_file(h, &[0; 2])).err().unwrap();
    assert!(e.to_string().contains("whole number of bytes"), "{e}");
    let h = r#"{"w":{"dtype":"F64","shape":[4611686018427387904, 8],"data_offsets":[0,2]}}"#;
    let e = open_bytes(&raw_file(h, &[0; 2])).err().unwrap();
    assert!(e.to_string().contains("overflows"), "{e}");
}

#[test]
fn unknown_dtype_and_bad_entries() {
    let h = r#"{"w":{"dtype":"F7","shape":[1],"data_offsets":[0,1]}}"#;
    let e = open_bytes(&raw_file(h, &[0])).err().unwrap();
    assert!(
        matches!(&e, IoError::UnknownDtype { dtype, .. } if dtype == "F7"),
        "{e}"
    );
    for h in [
        r#"{"w":{"shape":[1],"data_offsets":[0,1]}}"#,
        r#"{"w":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}}"#,
        r#"{"w":{"dtype":"U8","shape":[1],"data_offsets":[0]}}"#,
        r#"{"w":7}"#,
        r#"{"__metadata__":{"a":1}}"#,
    ] {
        let m = message(open_bytes(&raw_file(h, &[0])));
        assert!(m.contains("x.safetensors"), "{m}");
    }
}

fn write_file(path: &Path, tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) {
    let specs = tensors
        .iter()
        .map(|(n, d, s, _)| TensorSpec::new(*n, *d, s.clone()))
        .collect();
    let mut w = SafetensorsWriter::create(path, specs, &BTreeMap::new()).unwrap();
    for (n, _, _, b) in tensors {
        w.write_tensor(n, b).unwrap();
    }
    ue8_io::writer::finish_file(w).unwrap();
}

#[test]
fn sharded_directory_and_missing_shard() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_file(
        &d.join("model-00001-of-00002.safetensors"),
        &[("a", Dtype::U8, vec![2], vec![1, 2])],
    );
    write_file(
        &d.join("model-00002-of-00002.safetensors"),
        &[("b", Dtype::U8, vec![1], vec![3])],
    );
    let idx = r#"{"metadata":{"total_size":3},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}}"#;
    std::fs::write(d.join("model.safetensors.index.json"), idx).unwrap();
    std::fs::write(d.join("config.json"), r#"{"model_type":"llama"}"#).unwrap();
    let ck = Checkpoint::open(d).unwrap();
    assert_eq!(ck.len(), 2);
    assert_eq!(ck.tensor("b").unwrap().bytes, &[3]);
    assert_eq!(ck.config().unwrap()["model_type"], "llama");
    drop(ck);

    let idx_wrong = idx.replace("\"b\":\"model-00002", "\"b\":\"model-00001");
    std::fs::write(d.join("model.safetensors.index.json"), idx_wrong).unwrap();
    let e = Checkpoint::open(d).err().unwrap();
    assert!(matches!(e, IoError::BadIndex { .. }), "{e}");

    std::fs::write(d.join("model.safetensors.index.json"), idx).unwrap();
    std::fs::remove_file(d.join("model-00002-of-00002.safetensors")).unwrap();
    let e = Checkpoint::open(d).err().unwrap();
    assert!(
        matches!(&e, IoError::MissingShard { shard, .. } if shard == "model-00002-of-00002.safetensors"),
        "{e}"
    );

    let evil = r#"{"weight_map":{"a":"../x.safetensors"}}"#;
    std::fs::write(d.join("model.safetensors.index.json"), evil).unwrap();
    assert!(matches!(
        Checkpoint::open(d).err().unwrap(),
        IoError::BadIndex { .. }
    ));
}

#[test]
fn writer_rejects_wrong_order_size_and_failing_sink() {
    struct FullDisk;
    impl std::io::Write for FullDisk {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "no space left on device",
            ))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let specs = vec![TensorSpec::new("a", Dtype::U8, vec![2])];
    let p = Path::new("out/model.safetensors");
    let e = SafetensorsWriter::new(p, FullDisk, specs.clone(), &BTreeMap::new())
        .err()
        .unwrap();
    assert!(
        e.to_string().contains("out/model.safetensors") && e.to_string().contains("no space"),
        "{e}"
    );

    let mut w = SafetensorsWriter::new(p, Vec::new(), specs.clone(), &BTreeMap::new()).unwrap();
    assert!(w.write_tensor("b", &[1, 2]).is_err());
    assert!(w.write_tensor("a", &[1]).is_err());
    w.write_tensor("a", &[1, 2]).unwrap();
    assert!(w.write_tensor("a", &[1, 2]).is_err());
    let (bytes, digest) = w.finish().unwrap();
    assert_eq!(digest.bytes, bytes.len() as u64);
    assert_eq!((bytes.len() - 8) % 8, 2); // header padded to 8, then 2 data bytes

    let w = SafetensorsWriter::new(p, Vec::new(), specs, &BTreeMap::new()).unwrap();
    assert!(
        w.finish().is_err(),
        "finishing before every tensor is written must fail"
    );
}

#[test]
fn writer_output_is_read_by_the_safetensors_crate() {
    let specs = vec![
        TensorSpec::new("w", Dtype::F8E4M3, vec![2, 3]),
        TensorSpec::new("s", Dtype::F8E8M0, vec![1]),
        TensorSpec::new("p", Dtype::F4, vec![4]),
    ];
    let mut meta = BTreeMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    let mut w = SafetensorsWriter::new(Path::new("mem"), Vec::new(), specs, &meta).unwrap();
    w.write_tensor("w", &[1, 2, 3, 4, 5, 6]).unwrap();
    w.write_tensor("s", &[127]).unwrap();
    w.write_tensor("p", &[0x21, 0x43]).unwrap();
    let (bytes, _) = w.finish().unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor("w").unwrap();
    assert_eq!(t.dtype(), safetensors::Dtype::F8_E4M3);
    assert_eq!(t.shape(), &[2, 3]);
    assert_eq!(t.data(), &[1, 2, 3, 4, 5, 6]);
    assert_eq!(st.tensor("p").unwrap().data(), &[0x21, 0x43]);
}
