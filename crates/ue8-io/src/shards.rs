//! Splitting a checkpoint into shards of at most `max_shard_size` bytes (Hugging Face naming), and the
//! `model.safetensors.index.json` that maps each tensor to its shard.

use crate::writer::TensorSpec;
use std::collections::BTreeMap;

/// Default shard size, Hugging Face's `max_shard_size="5GB"` (decimal).
pub const DEFAULT_MAX_SHARD_SIZE: u64 = 5_000_000_000;

/// Name of shard `i` (0-based) of `n`: `model.safetensors` when n == 1, else
/// `model-00001-of-00003.safetensors`.
pub fn shard_file_name(i: usize, n: usize) -> String {
    if n <= 1 {
        crate::checkpoint::SINGLE_FILE.to_string()
    } else {
        format!("model-{:05}-of-{:05}.safetensors", i + 1, n)
    }
}

/// Groups of tensors that must share a shard (a weight and its scales), in output order, split
/// greedily: a new shard starts when adding the next group would pass `max_bytes` (a group larger than
/// `max_bytes` gets a shard of its own). Returns, per shard, its specs.
pub fn split_into_shards(groups: Vec<Vec<TensorSpec>>, max_bytes: u64) -> Vec<Vec<TensorSpec>> {
    let mut shards: Vec<Vec<TensorSpec>> = Vec::new();
    let mut current: Vec<TensorSpec> = Vec::new();
    let mut current_bytes = 0u64;
    for g in groups {
        let g_bytes: u64 = g.iter().map(|s| s.byte_len().unwrap_or(0)).sum();
        if !current.is_empty() && current_bytes.saturating_add(g_bytes) > max_bytes {
            shards.push(std::mem::take(&mut current));
            current_bytes = 0;
        }
        current_bytes = current_bytes.saturating_add(g_bytes);
        current.extend(g);
    }
    if !current.is_empty() || shards.is_empty() {
        shards.push(current);
    }
    shards
}

/// The index JSON for the given shards (`total_size` = bytes of tensor data, as transformers writes).
pub fn index_json(shards: &[Vec<TensorSpec>]) -> serde_json::Value {
    let n = shards.len();
    let mut total = 0u64;
    let mut map = BTreeMap::new();
    for (i, specs) in shards.iter().enumerate() {
        for s in specs {
            total += s.byte_len().unwrap_or(0);
            map.insert(s.name.clone(), shard_file_name(i, n));
        }
    }
    serde_json::json!({"metadata": {"total_size": total}, "weight_map": map})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dtype;

    fn spec(name: &str, n: usize) -> TensorSpec {
        TensorSpec::new(name, Dtype::U8, vec![n])
    }

    #[test]
    fn groups_stay_together_and_shards_respect_the_limit() {
        let groups = vec![
            vec![spec("a", 60), spec("a_s", 5)],
            vec![spec("b", 30)],
            vec![spec("c", 200)],
            vec![spec("d", 10)],
        ];
        let shards = split_into_shards(groups, 100);
        let names: Vec<Vec<&str>> = shards
            .iter()
            .map(|s| s.iter().map(|t| t.name.as_str()).collect())
            .collect();
        assert_eq!(names, vec![vec!["a", "a_s", "b"], vec!["c"], vec!["d"]]);
        assert_eq!(shard_file_name(1, 3), "model-00002-of-00003.safetensors");
        assert_eq!(shard_file_name(0, 1), "model.safetensors");
        let idx = index_json(&shards);
        assert_eq!(idx["metadata"]["total_size"], 305);
        assert_eq!(idx["weight_map"]["d"], "model-00003-of-00003.safetensors");
    }

    #[test]
    fn empty_checkpoint_is_one_empty_shard() {
        assert_eq!(
            split_into_shards(vec![], 10),
            vec![Vec::<TensorSpec>::new()]
        );
    }
}
