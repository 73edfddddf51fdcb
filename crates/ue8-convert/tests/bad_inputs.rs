//! Bad inputs of issue 4 at the converter level: missing or misshaped `weight_scale_inv`, 0xFF
//! scales, NaN/inf weights, OUTPUT existing or inside the input; each error names the file, the tensor
//! and the problem, and a failed run leaves no directory behind and its input untouched.

use half::bf16;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use ue8_convert::{
    execute, plan_dequantize, plan_quantize, ConvertError, NoProgress, OutDtype,
    QuantizePlanOptions, RunOptions, Scheme, TargetFormat,
};
use ue8_io::{Checkpoint, Dtype, SafetensorsWriter, TensorSpec};

type T = (&'static str, Dtype, Vec<usize>, Vec<u8>);

fn write_model(dir: &Path, tensors: Vec<T>) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let specs = tensors
        .iter()
        .map(|(n, d, s, _)| TensorSpec::new(*n, *d, s.clone()))
        .collect();
    let p = dir.join("model.safetensors");
    let mut w = SafetensorsWriter::create(&p, specs, &BTreeMap::new()).unwrap();
    for (n, _, _, b) in &tensors {
        w.write_tensor(n, b).unwrap();
    }
    ue8_io::writer::finish_file(w).unwrap();
    std::fs::write(dir.join("config.json"), b"{\"model_type\": \"llama\"}").unwrap();
    dir.to_path_buf()
}

fn bf16_bytes(v: &[f32]) -> Vec<u8> {
    v.iter()
        .flat_map(|x| bf16::from_f32(*x).to_le_bytes())
        .collect()
}

fn opts(force: bool) -> RunOptions {
    RunOptions {
        max_shard_size: 5_000_000_000,
        force,
        command_line: vec![],
    }
}

fn quantize(input: &Path, output: &Path, force: bool) -> Result<(), ConvertError> {
    let ck = Checkpoint::open(input)?;
    let scheme = Scheme::resolve(TargetFormat::Fp8Ue8m0, None, None)?;
    let plan = plan_quantize(
        &ck,
        &QuantizePlanOptions {
            format: TargetFormat::Fp8Ue8m0,
            scheme,
            keep: vec![],
            quantize_lm_head: false,
        },
    )?;
    execute(&ck, &plan, output, &opts(force), &NoProgress).map(|_| ())
}

fn dequantize(input: &Path, output: &Path) -> Result<(), ConvertError> {
    let ck = Checkpoint::open(input)?;
    let plan = plan_dequantize(&ck, OutDtype::Bf16)?;
    execute(&ck, &plan, output, &opts(false), &NoProgress).map(|_| ())
}

/// Nothing under OUTPUT's name and no leftover temporary sibling.
fn assert_no_output(output: &Path) {
    assert!(
        !output.exists(),
        "{} must not exist after a failed run",
        output.display()
    );
    let parent = output.parent().unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(parent)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".ue8-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary directories left: {leftovers:?}"
    );
}

fn ok_weight() -> T {
    (
        "a.weight",
        Dtype::BF16,
        vec![2, 4],
        bf16_bytes(&[1.0, 2.0, 3.0, 4.0, -1.0, 0.5, 0.25, 8.0]),
    )
}

#[test]
fn missing_weight_scale_inv() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write_model(
        &tmp.path().join("in"),
        vec![("w.weight", Dtype::F8E4M3, vec![2, 2], vec![0x38; 4])],
    );
    let out = tmp.path().join("out");
    let e = dequantize(&input, &out).unwrap_err().to_string();
    assert!(
        e.contains("model.safetensors")
            && e.contains("'w.weight'")
            && e.contains("missing 'w.weight_scale_inv'"),
        "{e}"
    );
    assert_no_output(&out);
}

#[test]
fn misshaped_weight_scale_inv() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write_model(
        &tmp.path().join("in"),
        vec![
            ("w.weight", Dtype::F8E4M3, vec![130, 2], vec![0x38; 260]),
            (
                "w.weight_scale_inv",
                Dtype::F32,
                vec![1, 1],
                1f32.to_le_bytes().to_vec(),
            ),
        ],
    );
    let out = tmp.path().join("out");
    let e = dequantize(&input, &out).unwrap_err().to_string();
    assert!(
        e.contains("'w.weight_scale_inv'") && e.contains("misshaped") && e.contains("[2, 1]"),
        "{e}"
    );
    assert_no_output(&out);
}

#[test]
fn e8m0_scale_0xff_is_refused_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write_model(
        &tmp.path().join("in"),
        vec![
            ("w.weight", Dtype::F8E4M3, vec![2, 32], vec![0x38; 64]),
            ("w.weight_scale", Dtype::U8, vec![2, 1], vec![127, 0xFF]),
        ],
    );
    let out = tmp.path().join("out");
    let e = dequantize(&input, &out).unwrap_err().to_string();
    assert!(e.contains("'w.weight_scale'") && e.contains("0xFF"), "{e}");
    assert_no_output(&out);
    let report = ue8_convert::inspect::inspect(&Checkpoint::open(&input).unwrap());
    assert!(
        report.anomalies.iter().any(|a| a.contains("0xFF")),
        "{:?}",
        report.anomalies
    );
}

#[test]
fn nan_and_inf_weights_are_refused_with_their_position() {
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let tmp = tempfile::tempdir().unwrap();
        let mut v = vec![0.5f32; 3 * 40];
        v[2 * 40 + 7] = bad;
        let input = write_model(
            &tmp.path().join("in"),
            vec![
                ok_weight(),
                ("b.weight", Dtype::F32, vec![3, 40], bytemuck_f32(&v)),
            ],
        );
        let before = std::fs::read(input.join("model.safetensors")).unwrap();
        let out = tmp.path().join("out");
        let e = quantize(&input, &out, false).unwrap_err().to_string();
        assert!(
            e.contains("'b.weight'") && e.contains("row 2, col 7") && e.contains("non-finite"),
            "{e}"
        );
        assert_no_output(&out);
        assert_eq!(
            std::fs::read(input.join("model.safetensors")).unwrap(),
            before,
            "input untouched"
        );
        let report = ue8_convert::inspect::inspect(&Checkpoint::open(&input).unwrap());
        assert!(report
            .anomalies
            .iter()
            .any(|a| a.contains("b.weight") && a.contains("NaN/inf")));
    }
}

fn bytemuck_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn output_exists_force_and_output_inside_input() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write_model(&tmp.path().join("in"), vec![ok_weight()]);
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep.txt"), b"user data").unwrap();
    let e = quantize(&input, &out, false).unwrap_err();
    assert!(
        matches!(e, ConvertError::Io(ue8_io::IoError::OutputExists { .. })),
        "{e}"
    );
    assert!(
        out.join("keep.txt").is_file(),
        "an existing OUTPUT is never touched without --force"
    );
    quantize(&input, &out, true).unwrap();
    assert!(!out.join("keep.txt").exists() && out.join("model.safetensors").is_file());

    let e = quantize(&input, &input.join("sub"), false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("inside the input"), "{e}");
    let e = quantize(&input, &input, true).unwrap_err().to_string();
    assert!(e.contains("input"), "{e}");
    assert!(input.join("model.safetensors").is_file());
}

#[test]
fn scale_dtype_and_rule_combinations_are_checked() {
    use ue8_convert::{RuleChoice, ScaleDtype};
    assert!(Scheme::resolve(TargetFormat::Fp8, None, Some(ScaleDtype::E8m0)).is_err());
    assert!(Scheme::resolve(TargetFormat::Fp8, Some(RuleChoice::Floor), None).is_err());
    assert!(Scheme::resolve(TargetFormat::Mxfp4, None, Some(ScaleDtype::F32)).is_err());
    assert!(Scheme::resolve(TargetFormat::Mxfp4, Some(RuleChoice::Ue8m0Ceil), None).is_err());
    assert!(Scheme::resolve(TargetFormat::Fp8Ue8m0, Some(RuleChoice::Rceil), None).is_err());
    assert!(TargetFormat::parse("fp7").is_err());
}
