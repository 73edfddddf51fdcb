//! GGUF tensor names to Hugging Face names (Llama family), and the undoing of GGML's Q/K row
//! permutation.
//!
//! llama.cpp's converter reorders the rows of `q_proj` and `k_proj` so that GGML's RoPE, which rotates
//! adjacent pairs (x[2i], x[2i+1]), gives the same result as Hugging Face's, which rotates halves
//! (x[i], x[i + d/2]). Per head of size d it views the HF rows as [2, d/2] and transposes them to
//! [d/2, 2]; [`unpermute_rows`] does the inverse.

/// The Hugging Face name of a GGUF tensor of a Llama-family model, or `None` if the name is not one
/// ue8 knows.
pub fn hf_name(gguf_name: &str) -> Option<String> {
    let fixed = match gguf_name {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(name) = fixed {
        return Some(name.to_string());
    }
    let rest = gguf_name.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    if layer.is_empty() || !layer.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (module, suffix) = rest.rsplit_once('.')?;
    if suffix != "weight" && suffix != "bias" {
        return None;
    }
    let hf_module = match module {
        "attn_norm" => "input_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_norm" => "post_attention_layernorm",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf_module}.{suffix}"))
}

/// Which permutation a tensor needs when imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowPermutation {
    None,
    /// Rows of `attn_q` (heads = attention head count).
    Query,
    /// Rows of `attn_k` (heads = key/value head count).
    Key,
}

/// The permutation a GGUF tensor of a `llama` model needs.
pub fn row_permutation(gguf_name: &str) -> RowPermutation {
    let module = gguf_name.rsplit('.').nth(1);
    match module {
        Some("attn_q") if gguf_name.starts_with("blk.") => RowPermutation::Query,
        Some("attn_k") if gguf_name.starts_with("blk.") => RowPermutation::Key,
        _ => RowPermutation::None,
    }
}

/// Why rows could not be un-permuted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{rows} rows of {cols} ({len} values) cannot be split into {heads} heads of an even size")]
pub struct PermuteError {
    pub rows: usize,
    pub cols: usize,
    pub heads: usize,
    pub len: usize,
}

fn check(data_len: usize, rows: usize, cols: usize, heads: usize) -> Result<usize, PermuteError> {
    let err = PermuteError {
        rows,
        cols,
        heads,
        len: data_len,
    };
    if heads == 0 || !rows.is_multiple_of(heads) || !(rows / heads).is_multiple_of(2) {
        return Err(err);
    }
    match rows.checked_mul(cols) {
        Some(n) if n == data_len => Ok(rows / heads),
        _ => Err(err),
    }
}

/// GGUF row order -> Hugging Face row order for a row-major [rows, cols] matrix of `heads` heads:
/// HF row h*d + k*(d/2) + j = GGUF row h*d + 2j + k.
pub fn unpermute_rows<T: Copy>(
    data: &[T],
    rows: usize,
    cols: usize,
    heads: usize,
) -> Result<Vec<T>, PermuteError> {
    let d = check(data.len(), rows, cols, heads)?;
    let half = d / 2;
    let mut out = Vec::with_capacity(data.len());
    for h in 0..heads {
        for k in 0..2 {
            for j in 0..half {
                let src = (h * d + 2 * j + k) * cols;
                out.extend_from_slice(&data[src..src + cols]);
            }
        }
    }
    Ok(out)
}

/// Hugging Face row order -> GGUF row order (what llama.cpp's converter does); the inverse of
/// [`unpermute_rows`], kept for tests and for writers of GGUF.
pub fn permute_rows<T: Copy>(
    data: &[T],
    rows: usize,
    cols: usize,
    heads: usize,
) -> Result<Vec<T>, PermuteError> {
    let d = check(data.len(), rows, cols, heads)?;
    let half = d / 2;
    let mut out = Vec::with_capacity(data.len());
    for h in 0..heads {
        for j in 0..half {
            for k in 0..2 {
                let src = (h * d + k * half + j) * cols;
                out.extend_from_slice(&data[src..src + cols]);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_map_to_hugging_face() {
        let cases = [
            ("token_embd.weight", "model.embed_tokens.weight"),
            ("output_norm.weight", "model.norm.weight"),
            ("output.weight", "lm_head.weight"),
            (
                "blk.0.attn_norm.weight",
                "model.layers.0.input_layernorm.weight",
            ),
            (
                "blk.12.attn_q.weight",
                "model.layers.12.self_attn.q_proj.weight",
            ),
            (
                "blk.3.attn_k.weight",
                "model.layers.3.self_attn.k_proj.weight",
            ),
            (
                "blk.3.attn_v.weight",
                "model.layers.3.self_attn.v_proj.weight",
            ),
            (
                "blk.3.attn_output.weight",
                "model.layers.3.self_attn.o_proj.weight",
            ),
            (
                "blk.29.ffn_norm.weight",
                "model.layers.29.post_attention_layernorm.weight",
            ),
            (
                "blk.1.ffn_gate.weight",
                "model.layers.1.mlp.gate_proj.weight",
            ),
            ("blk.1.ffn_up.weight", "model.layers.1.mlp.up_proj.weight"),
            (
                "blk.1.ffn_down.weight",
                "model.layers.1.mlp.down_proj.weight",
            ),
            ("blk.1.attn_q.bias", "model.layers.1.self_attn.q_proj.bias"),
        ];
        for (gguf, hf) in cases {
            assert_eq!(hf_name(gguf).as_deref(), Some(hf), "{gguf}");
        }
        for unknown in [
            "rope_freqs.weight",
            "blk.x.attn_q.weight",
            "blk..attn_q.weight",
            "blk.1.attn_q",
            "blk.1.ffn_gate_exps.weight",
            "",
        ] {
            assert_eq!(hf_name(unknown), None, "{unknown}");
        }
    }

    #[test]
    fn permutation_kind_follows_the_name() {
        assert_eq!(
            row_permutation("blk.0.attn_q.weight"),
            RowPermutation::Query
        );
        assert_eq!(row_permutation("blk.7.attn_k.weight"), RowPermutation::Key);
        assert_eq!(row_permutation("blk.7.attn_v.weight"), RowPermutation::None);
        assert_eq!(row_permutation("output.weight"), RowPermutation::None);
    }

    /// A hand-worked example: one head of size 4 ([2, 2] in HF, pairs in GGUF), one column.
    /// HF rows r0 r1 | r2 r3 (halves) are stored by GGML as r0 r2 r1 r3 (pairs (r0,r2), (r1,r3)).
    #[test]
    fn unpermute_matches_a_hand_example() {
        let gguf = [10, 12, 11, 13];
        assert_eq!(unpermute_rows(&gguf, 4, 1, 1), Ok(vec![10, 11, 12, 13]));
        // Two heads of size 4, two columns: each head is handled on its own.
        let gguf = [0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15];
        let hf: Vec<i32> = (0..16).collect();
        assert_eq!(unpermute_rows(&gguf, 8, 2, 2), Ok(hf.clone()));
        assert_eq!(permute_rows(&hf, 8, 2, 2), Ok(gguf.to_vec()));
    }

    #[test]
    fn bad_head_splits_are_errors() {
        assert!(unpermute_rows(&[0; 6], 6, 1, 4).is_err()); // 6 rows, 4 heads
        assert!(unpermute_rows(&[0; 6], 6, 1, 2).is_err()); // head size 3 is odd
        assert!(unpermute_rows(&[0; 6], 6, 1, 0).is_err());
        assert!(unpermute_rows(&[0; 7], 6, 1, 3).is_err()); // length mismatch
        assert_eq!(unpermute_rows::<u8>(&[], 0, 5, 1), Ok(vec![]));
    }

    proptest! {
        #[test]
        fn permute_then_unpermute_is_identity(heads in 1usize..5, half in 1usize..9, cols in 0usize..7) {
            let rows = heads * half * 2;
            let data: Vec<u32> = (0..(rows * cols) as u32).collect();
            let there = permute_rows(&data, rows, cols, heads).unwrap();
            let back = unpermute_rows(&there, rows, cols, heads).unwrap();
            prop_assert_eq!(&back, &data);
            if half > 1 && cols > 0 {
                prop_assert_ne!(&there, &data);
            }
        }
    }
}
