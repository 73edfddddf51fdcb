//! Exact parameter counts from a `ModelSpec`: every stored tensor of the model as a group of equal
//! matrices, with how many of them a token is multiplied by.
//!
//! Definitions (issue 8, item 6): total = every stored parameter of the main model, MTP modules reported
//! apart; active = what a token is multiplied by: everything except the input embedding (a lookup) and
//! the routed experts not selected. `lm_head` counts (for tied embeddings, the shared matrix counts once
//! as the head). Integer tables that are not trained weights (DeepSeek-V4's `tid2eid`) are not counted.

use crate::spec::{AttnSpec, FfnSpec, LayerSpec, ModelSpec, MtpExtras};

/// What a tensor is, which decides the format it is stored in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorKind {
    /// Input embedding: a lookup, stays BF16.
    Embedding,
    /// Output projection: BF16 unless `--quantize-lm-head`.
    LmHead,
    /// A 2-D linear weight: quantized by ue8's converter.
    Linear,
    /// A routed expert's linear weight: quantized; DeepSeek-V4 releases these in MXFP4.
    RoutedExpert,
    /// MoE router weight: stays BF16.
    Router,
    /// Norm weights, biases, sinks, hyper-connection mixers: stay BF16.
    Vector,
}

impl TensorKind {
    /// Linear weights that a quantized format converts.
    pub fn is_quantized_matrix(self) -> bool {
        matches!(self, TensorKind::Linear | TensorKind::RoutedExpert)
    }
}

/// Which module a tensor belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Module {
    Main,
    Mtp,
}

/// `count` equal tensors of shape [rows, cols], of which `active` are used per token.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorGroup {
    pub name: String,
    pub kind: TensorKind,
    pub module: Module,
    pub rows: u64,
    pub cols: u64,
    pub count: u64,
    pub active: u64,
    /// Routed experts: the group is one of a layer's expert tensors, `experts` of them, `top_k` read per
    /// token. Used to estimate the experts a batch touches.
    pub routed: Option<(u64, u64)>,
}

impl TensorGroup {
    /// Elements of one tensor.
    pub fn elements(&self) -> u64 {
        self.rows.saturating_mul(self.cols)
    }
    /// Parameters of the whole group.
    pub fn params(&self) -> u64 {
        self.elements().saturating_mul(self.count)
    }
    /// Parameters a token is multiplied by.
    pub fn active_params(&self) -> u64 {
        self.elements().saturating_mul(self.active)
    }
}

/// The tensor inventory of a model and its totals.
#[derive(Debug, Clone)]
pub struct ParamBreakdown {
    pub groups: Vec<TensorGroup>,
}

/// Parameter totals by component, for tables and JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ParamTotals {
    pub total: u64,
    pub active: u64,
    pub embedding: u64,
    pub lm_head: u64,
    pub routed_experts: u64,
    pub mtp_total: u64,
    pub mtp_active: u64,
}

impl ParamBreakdown {
    /// Build the inventory of a model.
    pub fn of(spec: &ModelSpec) -> Self {
        let mut b = Builder::default();
        let h = spec.hidden_size;
        b.push(
            "embed_tokens",
            TensorKind::Embedding,
            Module::Main,
            spec.vocab_size,
            h,
            1,
            0,
        );
        for (i, layer) in spec.layers.iter().enumerate() {
            b.layer(spec, &format!("layers.{i}"), layer, Module::Main);
        }
        b.push("norm", TensorKind::Vector, Module::Main, 1, h, 1, 1);
        if let Some(m) = spec.hc_mult {
            hc_head(&mut b, "hc_head", Module::Main, m, h);
        }
        if spec.tie_word_embeddings {
            // The head is the embedding matrix: not stored twice, but a token is multiplied by it.
            b.push(
                "lm_head (tied to embed_tokens)",
                TensorKind::LmHead,
                Module::Main,
                spec.vocab_size,
                h,
                0,
                1,
            );
        } else {
            b.push(
                "lm_head",
                TensorKind::LmHead,
                Module::Main,
                spec.vocab_size,
                h,
                1,
                1,
            );
        }
        for (j, layer) in spec.mtp_layers.iter().enumerate() {
            let prefix = format!("mtp.{j}");
            b.layer(spec, &prefix, layer, Module::Mtp);
            match spec.mtp_extras {
                Some(MtpExtras::DeepseekV3) => {
                    let p = Module::Mtp;
                    b.push(
                        &format!("{prefix}.enorm+hnorm"),
                        TensorKind::Vector,
                        p,
                        2,
                        h,
                        1,
                        1,
                    );
                    b.push(
                        &format!("{prefix}.eh_proj"),
                        TensorKind::Linear,
                        p,
                        h,
                        2 * h,
                        1,
                        1,
                    );
                    b.push(
                        &format!("{prefix}.shared_head.norm"),
                        TensorKind::Vector,
                        p,
                        1,
                        h,
                        1,
                        1,
                    );
                    b.push(
                        &format!("{prefix}.embed_tokens"),
                        TensorKind::Embedding,
                        p,
                        spec.vocab_size,
                        h,
                        1,
                        0,
                    );
                    b.push(
                        &format!("{prefix}.shared_head.head"),
                        TensorKind::LmHead,
                        p,
                        spec.vocab_size,
                        h,
                        1,
                        1,
                    );
                }
                Some(MtpExtras::DeepseekV4) => {
                    let p = Module::Mtp;
                    b.push(
                        &format!("{prefix}.e_proj+h_proj"),
                        TensorKind::Linear,
                        p,
                        h,
                        h,
                        2,
                        2,
                    );
                    b.push(
                        &format!("{prefix}.enorm+hnorm+norm"),
                        TensorKind::Vector,
                        p,
                        3,
                        h,
                        1,
                        1,
                    );
                    if let Some(m) = spec.hc_mult {
                        hc_head(&mut b, &format!("{prefix}.hc_head"), p, m, h);
                    }
                }
                None => {}
            }
        }
        ParamBreakdown { groups: b.groups }
    }

    /// Totals of the main model and of the MTP modules.
    pub fn totals(&self) -> ParamTotals {
        let mut t = ParamTotals::default();
        for g in &self.groups {
            match g.module {
                Module::Main => {
                    t.total = t.total.saturating_add(g.params());
                    t.active = t.active.saturating_add(g.active_params());
                    match g.kind {
                        TensorKind::Embedding => {
                            t.embedding = t.embedding.saturating_add(g.params())
                        }
                        TensorKind::LmHead => t.lm_head = t.lm_head.saturating_add(g.elements()),
                        TensorKind::RoutedExpert => {
                            t.routed_experts = t.routed_experts.saturating_add(g.params())
                        }
                        _ => {}
                    }
                }
                Module::Mtp => {
                    t.mtp_total = t.mtp_total.saturating_add(g.params());
                    t.mtp_active = t.mtp_active.saturating_add(g.active_params());
                }
            }
        }
        t
    }

    /// Groups of the main model only.
    pub fn main_groups(&self) -> impl Iterator<Item = &TensorGroup> {
        self.groups.iter().filter(|g| g.module == Module::Main)
    }
}

fn hc_head(b: &mut Builder, name: &str, module: Module, m: u64, h: u64) {
    b.push(
        &format!("{name}_fn"),
        TensorKind::Vector,
        module,
        m,
        m * h,
        1,
        1,
    );
    b.push(
        &format!("{name}_base+scale"),
        TensorKind::Vector,
        module,
        1,
        m + 1,
        1,
        1,
    );
}

#[derive(Default)]
struct Builder {
    groups: Vec<TensorGroup>,
}

impl Builder {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        name: &str,
        kind: TensorKind,
        module: Module,
        rows: u64,
        cols: u64,
        count: u64,
        active: u64,
    ) {
        if rows == 0 || cols == 0 || (count == 0 && active == 0) {
            return;
        }
        self.groups.push(TensorGroup {
            name: name.to_string(),
            kind,
            module,
            rows,
            cols,
            count,
            active,
            routed: None,
        });
    }

    fn lin(&mut self, name: &str, module: Module, rows: u64, cols: u64) {
        self.push(name, TensorKind::Linear, module, rows, cols, 1, 1);
    }

    fn vec(&mut self, name: &str, module: Module, len: u64) {
        self.push(name, TensorKind::Vector, module, 1, len, 1, 1);
    }

    fn layer(&mut self, spec: &ModelSpec, p: &str, layer: &LayerSpec, module: Module) {
        let h = spec.hidden_size;
        self.vec(
            &format!("{p}.input_norm+post_attention_norm"),
            module,
            2 * h,
        );
        match &layer.attn {
            AttnSpec::Gqa {
                heads,
                kv_heads,
                head_dim,
                qkv_bias,
                o_bias,
                qk_norm,
                sinks,
                ..
            } => {
                let q = heads * head_dim;
                let kv = kv_heads * head_dim;
                self.lin(&format!("{p}.q_proj"), module, q, h);
                self.lin(&format!("{p}.k_proj"), module, kv, h);
                self.lin(&format!("{p}.v_proj"), module, kv, h);
                self.lin(&format!("{p}.o_proj"), module, h, q);
                if *qkv_bias {
                    self.vec(&format!("{p}.qkv_bias"), module, q + 2 * kv);
                }
                if *o_bias {
                    self.vec(&format!("{p}.o_bias"), module, h);
                }
                if *qk_norm {
                    self.vec(&format!("{p}.q_norm+k_norm"), module, 2 * head_dim);
                }
                if *sinks {
                    self.vec(&format!("{p}.sinks"), module, *heads);
                }
            }
            AttnSpec::Mla {
                heads,
                q_lora_rank,
                kv_lora_rank,
                qk_nope_head_dim,
                qk_rope_head_dim,
                v_head_dim,
            } => {
                let q_head = qk_nope_head_dim + qk_rope_head_dim;
                match q_lora_rank {
                    Some(r) => {
                        self.lin(&format!("{p}.q_a_proj"), module, *r, h);
                        self.vec(&format!("{p}.q_a_layernorm"), module, *r);
                        self.lin(&format!("{p}.q_b_proj"), module, heads * q_head, *r);
                    }
                    None => self.lin(&format!("{p}.q_proj"), module, heads * q_head, h),
                }
                self.lin(
                    &format!("{p}.kv_a_proj_with_mqa"),
                    module,
                    kv_lora_rank + qk_rope_head_dim,
                    h,
                );
                self.vec(&format!("{p}.kv_a_layernorm"), module, *kv_lora_rank);
                self.lin(
                    &format!("{p}.kv_b_proj"),
                    module,
                    heads * (qk_nope_head_dim + v_head_dim),
                    *kv_lora_rank,
                );
                self.lin(&format!("{p}.o_proj"), module, h, heads * v_head_dim);
            }
            AttnSpec::DeepseekV4 {
                heads,
                head_dim,
                q_lora_rank,
                o_lora_rank,
                o_groups,
                compress_ratio,
                index_heads,
                index_head_dim,
                ..
            } => {
                let hd = *head_dim;
                self.lin(&format!("{p}.attn.wq_a"), module, *q_lora_rank, h);
                self.vec(&format!("{p}.attn.q_norm"), module, *q_lora_rank);
                self.lin(&format!("{p}.attn.wq_b"), module, heads * hd, *q_lora_rank);
                self.lin(&format!("{p}.attn.wkv"), module, hd, h);
                self.vec(&format!("{p}.attn.kv_norm"), module, hd);
                self.lin(
                    &format!("{p}.attn.wo_a"),
                    module,
                    o_groups * o_lora_rank,
                    heads * hd / o_groups,
                );
                self.lin(&format!("{p}.attn.wo_b"), module, h, o_groups * o_lora_rank);
                self.vec(&format!("{p}.attn.attn_sink"), module, *heads);
                if *compress_ratio > 0 {
                    compressor(
                        self,
                        &format!("{p}.attn.compressor"),
                        module,
                        *compress_ratio,
                        hd,
                        h,
                    );
                }
                if *compress_ratio == 4 && *index_heads > 0 && *index_head_dim > 0 {
                    self.lin(
                        &format!("{p}.attn.indexer.wq_b"),
                        module,
                        index_heads * index_head_dim,
                        *q_lora_rank,
                    );
                    self.lin(
                        &format!("{p}.attn.indexer.weights_proj"),
                        module,
                        *index_heads,
                        h,
                    );
                    compressor(
                        self,
                        &format!("{p}.attn.indexer.compressor"),
                        module,
                        4,
                        *index_head_dim,
                        h,
                    );
                }
            }
        }
        if let Some(m) = spec.hc_mult {
            // Two hyper-connection mixers per layer (attention and FFN): fn [(2+m)m, m*h], base, scale[3].
            let mix = (2 + m) * m;
            self.push(
                &format!("{p}.hc_attn+hc_ffn_fn"),
                TensorKind::Vector,
                module,
                mix,
                m * h,
                2,
                2,
            );
            self.push(
                &format!("{p}.hc_attn+hc_ffn_base+scale"),
                TensorKind::Vector,
                module,
                1,
                mix + 3,
                2,
                2,
            );
        }
        match &layer.ffn {
            FfnSpec::Dense { intermediate } => {
                self.push(
                    &format!("{p}.mlp.gate+up"),
                    TensorKind::Linear,
                    module,
                    *intermediate,
                    h,
                    2,
                    2,
                );
                self.lin(&format!("{p}.mlp.down"), module, h, *intermediate);
            }
            FfnSpec::Moe(moe) => {
                self.push(
                    &format!("{p}.mlp.router"),
                    TensorKind::Router,
                    module,
                    moe.experts,
                    h,
                    1,
                    1,
                );
                if moe.router_bias {
                    self.vec(&format!("{p}.mlp.router_bias"), module, moe.experts);
                }
                let e = moe.experts;
                let k = moe.top_k.min(e);
                let i = moe.expert_intermediate;
                for (name, rows, cols, n) in [("gate+up", i, h, 2), ("down", h, i, 1)] {
                    self.groups.push(TensorGroup {
                        name: format!("{p}.mlp.experts.{name}"),
                        kind: TensorKind::RoutedExpert,
                        module,
                        rows,
                        cols,
                        count: e * n,
                        active: k * n,
                        routed: Some((e, k)),
                    });
                }
                if moe.expert_bias {
                    self.push(
                        &format!("{p}.mlp.experts.bias"),
                        TensorKind::Vector,
                        module,
                        1,
                        2 * i + h,
                        e,
                        k,
                    );
                }
                if moe.shared_intermediate > 0 {
                    let s = moe.shared_intermediate;
                    self.push(
                        &format!("{p}.mlp.shared_experts.gate+up"),
                        TensorKind::Linear,
                        module,
                        s,
                        h,
                        2,
                        2,
                    );
                    self.lin(&format!("{p}.mlp.shared_experts.down"), module, h, s);
                    if spec.model_type == "qwen2_moe" {
                        self.vec(&format!("{p}.mlp.shared_expert_gate"), module, h);
                    }
                }
            }
        }
    }
}

/// DeepSeek-V4 KV compressor: wkv and wgate [out, h], ape [ratio, out], norm [head]; out doubles on the
/// overlapping ratio-4 layers.
fn compressor(b: &mut Builder, name: &str, module: Module, ratio: u64, head: u64, h: u64) {
    let out = if ratio == 4 { 2 * head } else { head };
    b.push(
        &format!("{name}.wkv+wgate"),
        TensorKind::Linear,
        module,
        out,
        h,
        2,
        2,
    );
    b.push(
        &format!("{name}.ape"),
        TensorKind::Vector,
        module,
        ratio,
        out,
        1,
        1,
    );
    b.vec(&format!("{name}.norm"), module, head);
}
