//! y[m, n] = x[m, k] W^T for every stored weight format: the one place the model code calls into
//! the matmul kernels. `matmul_ref` is the plain reference (dequantize a row, dot it with each
//! activation row) that the fast kernels are checked against.

use crate::error::{EngineError, Result};
use crate::kernels::{Activations, Pool, MATMUL_GROUP_MAX};
use crate::layers::dot;
use crate::weights::Linear;

fn check(lin: &Linear, x: &[f32], m: usize, y: &[f32]) -> Result<()> {
    let xs = m.checked_mul(lin.k);
    let ys = m.checked_mul(lin.n);
    if xs != Some(x.len()) || ys != Some(y.len()) {
        return Err(EngineError::InvalidArgument(format!(
            "{}: matmul of [{m}, {}] by [{}, {}]^T given x of {} and y of {}",
            lin.name,
            lin.k,
            lin.n,
            lin.k,
            x.len(),
            y.len()
        )));
    }
    Ok(())
}

/// Reference matmul: exact dequantization of each weight row, f32 dot products, bias added.
pub fn matmul_ref(lin: &Linear, x: &[f32], m: usize, y: &mut [f32]) -> Result<()> {
    check(lin, x, m, y)?;
    let (n, k) = (lin.n, lin.k);
    let mut row = vec![0.0f32; k];
    for r in 0..n {
        lin.dequant_row(r, &mut row)?;
        for i in 0..m {
            y[i * n + r] = dot(&x[i * k..(i + 1) * k], &row);
        }
    }
    add_bias(lin, m, y);
    Ok(())
}

/// y[i, :] += bias for every row i.
pub fn add_bias(lin: &Linear, m: usize, y: &mut [f32]) {
    if let Some(b) = &lin.bias {
        for row in y.chunks_exact_mut(lin.n).take(m) {
            for (v, &bb) in row.iter_mut().zip(b) {
                *v += bb;
            }
        }
    }
}

/// One job of [`Matmul::matmul_group`]: the layer, x, m and y.
type LinearJob<'a, 'w> = (&'a Linear<'w>, &'a [f32], usize, &'a mut [f32]);

/// The matmul executor a session uses: one persistent thread pool for the whole run.
pub struct Matmul {
    pool: Pool,
}

impl Matmul {
    /// An executor with `threads` threads in all (0 = one per available core).
    pub fn new(threads: usize) -> Result<Self> {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        };
        Ok(Matmul {
            pool: Pool::new(threads).map_err(EngineError::ThreadPool)?,
        })
    }

    /// Takes activations as `acts` says from now on ([`Activations::Int8`]: MXFP4 weights meet int8
    /// activations, every other format is unchanged).
    pub fn set_activations(&mut self, acts: Activations) {
        self.pool.set_activations(acts);
    }

    /// How matmuls take activations.
    pub fn activations(&self) -> Activations {
        self.pool.activations()
    }

    /// Threads in use (the caller's included).
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }

    /// The pool, for other parallel work (attention).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// y[m, n] = x[m, k] W^T (+ bias), with the fastest kernel this CPU has.
    pub fn matmul(&self, lin: &Linear, x: &[f32], m: usize, y: &mut [f32]) -> Result<()> {
        check(lin, x, m, y)?;
        self.pool
            .matmul(&lin.matrix, x, m, y)
            .map_err(|source| EngineError::Kernel {
                tensor: lin.name.clone(),
                source,
            })?;
        add_bias(lin, m, y);
        Ok(())
    }

    /// Several independent `y = x W^T (+ bias)` under one pool dispatch (a token's experts): the same
    /// results as calling [`Matmul::matmul`] on each, with one synchronisation per
    /// [`MATMUL_GROUP_MAX`] jobs instead of one per job. No allocation.
    pub fn matmul_group<'a, 'w: 'a>(
        &self,
        jobs: impl IntoIterator<Item = (&'a Linear<'w>, &'a [f32], usize, &'a mut [f32])>,
    ) -> Result<()> {
        let mut it = jobs.into_iter();
        loop {
            let mut group: [Option<LinearJob>; MATMUL_GROUP_MAX] = std::array::from_fn(|_| None);
            let mut count = 0;
            for slot in group.iter_mut() {
                let Some((lin, x, m, y)) = it.next() else {
                    break;
                };
                check(lin, x, m, y)?;
                *slot = Some((lin, x, m, y));
                count += 1;
            }
            if count == 0 {
                return Ok(());
            }
            self.pool
                .matmul_group(
                    group
                        .iter_mut()
                        .flatten()
                        .map(|(lin, x, m, y)| (&lin.matrix, *x, *m, &mut **y)),
                )
                .map_err(|source| EngineError::Kernel {
                    tensor: "matmul group".into(),
                    source,
                })?;
            for (lin, _, m, y) in group.iter_mut().flatten() {
                add_bias(lin, *m, y);
            }
            if count < MATMUL_GROUP_MAX {
                return Ok(());
            }
        }
    }
}
