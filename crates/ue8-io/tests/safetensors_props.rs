//! Property tests of the safetensors reader and writer: anything the writer produces reads back
//! with identical names, dtypes, shapes and bytes (and is accepted by the `safetensors` crate), and
//! the header parser never panics on arbitrary or mutated input, only returns typed errors.

use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;
use ue8_io::header::parse_header;
use ue8_io::{Dtype, SafetensorsWriter, TensorSpec};

const DTYPES: [Dtype; 8] = [
    Dtype::F32,
    Dtype::BF16,
    Dtype::F8E4M3,
    Dtype::F8E8M0,
    Dtype::U8,
    Dtype::F4,
    Dtype::F6E3M2,
    Dtype::I64,
];

/// A random tensor list whose sub-byte shapes are whole bytes (the safetensors rule).
fn tensors() -> impl Strategy<Value = Vec<(Dtype, Vec<usize>, u8)>> {
    prop::collection::vec(
        (
            0usize..DTYPES.len(),
            prop::collection::vec(0usize..7, 0..3),
            any::<u8>(),
        )
            .prop_map(|(d, mut shape, fill)| {
                let dtype = DTYPES[d];
                // Make packed types whole bytes: F4 needs an even count, F6 a multiple of 4.
                let mult = match dtype {
                    Dtype::F4 => 2,
                    Dtype::F6E3M2 => 4,
                    _ => 1,
                };
                shape.push(mult);
                (dtype, shape, fill)
            }),
        0..6,
    )
}

fn write(t: &[(Dtype, Vec<usize>, u8)]) -> Vec<u8> {
    let specs: Vec<TensorSpec> = t
        .iter()
        .enumerate()
        .map(|(i, (d, s, _))| TensorSpec::new(format!("t{i}"), *d, s.clone()))
        .collect();
    let mut meta = BTreeMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    let mut w = SafetensorsWriter::new(Path::new("mem"), Vec::new(), specs.clone(), &meta).unwrap();
    for (i, (spec, (_, _, fill))) in specs.iter().zip(t).enumerate() {
        let len = spec.byte_len().unwrap() as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|j| fill.wrapping_add((j * 31 + i) as u8))
            .collect();
        w.write_tensor(&spec.name, &bytes).unwrap();
    }
    w.finish().unwrap().0
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn written_files_read_back_exactly(t in tensors()) {
        let file = write(&t);
        let h = parse_header(Path::new("mem"), &file).unwrap();
        prop_assert_eq!(h.tensors.len(), t.len());
        prop_assert_eq!(h.data_start % 8, 0);
        for (i, (d, s, _)) in t.iter().enumerate() {
            let info = h.tensors.iter().find(|x| x.name == format!("t{i}")).unwrap();
            prop_assert_eq!(info.dtype, *d);
            prop_assert_eq!(&info.shape, s);
        }
        let st = safetensors::SafeTensors::deserialize(&file).unwrap();
        prop_assert_eq!(st.len(), t.len());
        for info in &h.tensors {
            let a = &file[(h.data_start + info.start) as usize..(h.data_start + info.end) as usize];
            prop_assert_eq!(st.tensor(&info.name).unwrap().data(), a);
        }
    }

    #[test]
    fn mutated_files_never_panic(t in tensors(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in any::<prop::sample::Index>()) {
        let mut file = write(&t);
        for (i, b) in flips {
            let at = i.index(file.len());
            file[at] = b;
        }
        let _ = parse_header(Path::new("mem"), &file);
        let end = cut.index(file.len() + 1);
        let _ = parse_header(Path::new("mem"), &file[..end]);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_header(Path::new("mem"), &bytes);
        let mut with_len = (bytes.len() as u64).to_le_bytes().to_vec();
        with_len.extend_from_slice(&bytes);
        let _ = parse_header(Path::new("mem"), &with_len);
    }
}
