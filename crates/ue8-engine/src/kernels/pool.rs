//! One persistent thread pool for a whole run. Workers spin briefly after each job (decode issues many
//! small jobs back to back), then park on a condition variable. A call hands out a borrowed closure,
//! runs its own share on the calling thread and waits: no allocation, no fork/join per op.

use std::cell::UnsafeCell;
use std::ops::Range;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::error::KernelError;
use super::weights::WeightMatrix;
use super::{check_shapes, matmul_rows_unchecked, Activations, Isa, OutPtr};

/// How long an idle worker spins before parking: longer than the gap between two matmuls of one
/// decode step (norms, RoPE, attention of a small model take microseconds), far shorter than a token.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(200);
/// Rows handed to a thread are a multiple of this, so that threads never split a row block.
const ROW_ALIGN: usize = 16;

type JobFn = dyn Fn(usize) + Sync;

struct Shared {
    /// The current job; written by the caller only while every worker is idle (see `Pool::run`).
    job: UnsafeCell<Option<*const JobFn>>,
    generation: AtomicU64,
    pending: AtomicUsize,
    worker_panicked: AtomicBool,
    shutdown: AtomicBool,
    sleepers: AtomicUsize,
    sleep_lock: Mutex<()>,
    wake: Condvar,
    spin: Duration,
}

// SAFETY: `job` is written by the caller before the Release increment of `generation` and read by
// workers after an Acquire load sees it; the caller does not touch it again until `pending` is 0.
// The closure behind the pointer is `Sync`.
unsafe impl Sync for Shared {}
// SAFETY: as above; the raw pointer is only dereferenced under that protocol.
unsafe impl Send for Shared {}

/// A persistent pool of `threads - 1` workers plus the calling thread.
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    threads: usize,
    /// Held for the duration of a job; a nested or concurrent call finds it taken and runs serially.
    busy: Mutex<()>,
    isa: Isa,
    acts: Activations,
}

fn lock(m: &Mutex<()>) -> MutexGuard<'_, ()> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Pool {
    /// A pool of `threads` threads in all (the caller counts as one; 0 is taken as 1).
    pub fn new(threads: usize) -> Result<Self, std::io::Error> {
        Self::with_spin(threads, DEFAULT_SPIN)
    }

    /// As [`Pool::new`], with the idle spin time given.
    pub fn with_spin(threads: usize, spin: Duration) -> Result<Self, std::io::Error> {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            job: UnsafeCell::new(None),
            generation: AtomicU64::new(0),
            pending: AtomicUsize::new(0),
            worker_panicked: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            sleep_lock: Mutex::new(()),
            wake: Condvar::new(),
            spin,
        });
        let mut pool = Pool {
            shared,
            workers: Vec::with_capacity(threads - 1),
            threads,
            busy: Mutex::new(()),
            isa: Isa::best(),
            acts: Activations::F32,
        };
        for index in 1..threads {
            let shared = Arc::clone(&pool.shared);
            let handle = std::thread::Builder::new()
                .name(format!("ue8-worker-{index}"))
                .spawn(move || worker_loop(&shared, index))?;
            pool.workers.push(handle);
        }
        Ok(pool)
    }

    /// Threads in all, the caller included.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The instruction set the pool's matmuls use ([`Isa::best`] unless changed).
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Uses `isa` for this pool's matmuls (tests and benchmarks compare variants this way). An ISA
    /// the CPU lacks falls back to [`Isa::Scalar`].
    pub fn set_isa(&mut self, isa: Isa) {
        self.isa = if Isa::supported().contains(&isa) {
            isa
        } else {
            Isa::Scalar
        };
    }

    /// How the pool's matmuls take activations ([`Activations::F32`] unless changed).
    pub fn activations(&self) -> Activations {
        self.acts
    }

    /// Takes activations as `acts` says in this pool's matmuls.
    pub fn set_activations(&mut self, acts: Activations) {
        self.acts = acts;
    }

    /// Calls `f(thread_index)` once on each of the pool's threads (index 0 is the caller) and returns
    /// when all calls have. A call made while the pool is busy (from inside `f`, or from another
    /// thread) runs every index on the calling thread instead of deadlocking.
    pub fn run(&self, f: &(dyn Fn(usize) + Sync)) {
        if self.threads == 1 {
            f(0);
            return;
        }
        let _busy = match self.busy.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                (0..self.threads).for_each(f);
                return;
            }
        };
        let sh = &*self.shared;
        // SAFETY: erasing the closure's lifetime is sound because this function does not return
        // before every worker has finished with it (`pending` reaches 0 below), and `busy` keeps
        // any other caller out meanwhile. Workers are idle now (the previous call waited for them).
        unsafe {
            let erased: *const JobFn =
                std::mem::transmute::<&(dyn Fn(usize) + Sync), &'static JobFn>(f);
            *sh.job.get() = Some(erased);
        }
        sh.pending.store(self.threads - 1, Ordering::Relaxed);
        sh.generation.fetch_add(1, Ordering::SeqCst);
        if sh.sleepers.load(Ordering::SeqCst) > 0 {
            let _g = lock(&sh.sleep_lock);
            sh.wake.notify_all();
        }
        let mine = catch_unwind(AssertUnwindSafe(|| f(0)));
        let start = Instant::now();
        let mut spins = 0u32;
        while sh.pending.load(Ordering::Acquire) != 0 {
            spins = spins.wrapping_add(1);
            if spins & 63 != 0 || start.elapsed() < sh.spin {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        // SAFETY: every worker is done with the job (pending == 0).
        unsafe { *sh.job.get() = None };
        if let Err(payload) = mine {
            resume_unwind(payload);
        }
        if sh.worker_panicked.swap(false, Ordering::AcqRel) {
            resume_unwind(Box::new("a ue8 pool worker panicked"));
        }
    }

    /// Calls `f(i)` for every `i < n_items`, items handed out one at a time to whichever thread is
    /// free (attention heads, rows of unequal cost).
    pub fn parallel_for(&self, n_items: usize, f: impl Fn(usize) + Sync) {
        let next = AtomicUsize::new(0);
        self.run(&|_thread| loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n_items {
                break;
            }
            f(i);
        });
    }

    /// Calls `f(range)` once per thread with contiguous, disjoint ranges covering `0..n_items`, each
    /// a multiple of `align` long except the last (some may be empty).
    pub fn parallel_chunks(&self, n_items: usize, align: usize, f: impl Fn(Range<usize>) + Sync) {
        let threads = self.threads;
        self.run(&|t| f(split(n_items, align, t, threads)));
    }

    /// `y = x W^T` for `m` tokens: `x` is [m, k] row-major, `y` is [m, n]. Rows of W are split across
    /// the threads; each thread writes only its own columns of `y`.
    pub fn matmul(
        &self,
        w: &WeightMatrix,
        x: &[f32],
        m: usize,
        y: &mut [f32],
    ) -> Result<(), KernelError> {
        check_shapes("Pool::matmul", w, x, m, 0..w.n(), y)?;
        let out = OutPtr::new(y);
        let (n, isa, acts, threads) = (w.n(), self.isa, self.acts, self.threads);
        self.run(&|t| {
            let rows = split(n, ROW_ALIGN, t, threads);
            // SAFETY: shapes were checked above; `split` gives each thread disjoint rows, so no two
            // threads write the same element of `y`; `isa` is supported (set_isa / Isa::best).
            unsafe { matmul_rows_unchecked(isa, acts, w, x, m, rows, out) };
        });
        Ok(())
    }
}

/// Most matmuls one [`Pool::matmul_group`] call runs under a single dispatch; longer groups go in
/// several dispatches.
pub const MATMUL_GROUP_MAX: usize = 32;

/// One checked job of a group: W, x, m and where y lies.
type GroupJob<'a, 'w> = (&'a WeightMatrix<'w>, &'a [f32], usize, OutPtr);

impl Pool {
    /// Several independent matmuls `y_j = x_j W_j^T` under one dispatch: every thread takes its share
    /// of the rows of each matrix, so small matrices (a token's routed experts) cost one
    /// synchronisation for the group instead of one each. Results are bit-identical to
    /// [`Pool::matmul`] on each job. No allocation.
    pub fn matmul_group<'a, 'w: 'a>(
        &self,
        jobs: impl IntoIterator<Item = (&'a WeightMatrix<'w>, &'a [f32], usize, &'a mut [f32])>,
    ) -> Result<(), KernelError> {
        let (isa, acts, threads) = (self.isa, self.acts, self.threads);
        let mut it = jobs.into_iter();
        loop {
            let mut group: [Option<GroupJob>; MATMUL_GROUP_MAX] = [None; MATMUL_GROUP_MAX];
            let mut count = 0;
            for slot in group.iter_mut() {
                let Some((w, x, m, y)) = it.next() else { break };
                check_shapes("Pool::matmul_group", w, x, m, 0..w.n(), y)?;
                *slot = Some((w, x, m, OutPtr::new(y)));
                count += 1;
            }
            if count == 0 {
                return Ok(());
            }
            let group = &group;
            self.run(&|t| {
                for (w, x, m, out) in group.iter().flatten() {
                    let rows = split(w.n(), ROW_ALIGN, t, threads);
                    // SAFETY: shapes checked above; each job writes its own `y` (distinct `&mut`
                    // borrows), and within a job `split` gives threads disjoint rows; `isa` is
                    // supported.
                    unsafe { matmul_rows_unchecked(isa, acts, w, x, *m, rows, *out) };
                }
            });
            if count < MATMUL_GROUP_MAX {
                return Ok(());
            }
        }
    }
}

/// Part `t` of `threads` of `0..n`, in pieces that are multiples of `align`.
fn split(n: usize, align: usize, t: usize, threads: usize) -> Range<usize> {
    let align = align.max(1);
    let per = n.div_ceil(threads.max(1)).div_ceil(align) * align;
    let start = t.saturating_mul(per).min(n);
    start..start.saturating_add(per).min(n)
}

fn worker_loop(sh: &Shared, index: usize) {
    let mut seen = 0u64;
    loop {
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            if sh.generation.load(Ordering::Acquire) != seen {
                break;
            }
            if sh.shutdown.load(Ordering::Acquire) {
                return;
            }
            spins = spins.wrapping_add(1);
            if spins & 63 != 0 || start.elapsed() < sh.spin {
                std::hint::spin_loop();
                continue;
            }
            let guard = lock(&sh.sleep_lock);
            sh.sleepers.fetch_add(1, Ordering::SeqCst);
            if sh.generation.load(Ordering::SeqCst) == seen && !sh.shutdown.load(Ordering::SeqCst) {
                drop(sh.wake.wait(guard));
            } else {
                drop(guard);
            }
            sh.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
        seen = sh.generation.load(Ordering::Acquire);
        // SAFETY: the Acquire load above synchronizes with the caller's write of `job`, which stays
        // valid until this worker decrements `pending`.
        let job = unsafe { *sh.job.get() };
        if let Some(f) = job {
            // SAFETY: see above: the closure outlives this call.
            let result = catch_unwind(AssertUnwindSafe(|| unsafe { (*f)(index) }));
            if result.is_err() {
                sh.worker_panicked.store(true, Ordering::Release);
            }
        }
        sh.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        {
            let _g = lock(&self.shared.sleep_lock);
            self.shared.wake.notify_all();
        }
        for handle in self.workers.drain(..) {
            // A worker that panicked outside a job has nothing left to report.
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_covers_range_disjointly() {
        for n in [0usize, 1, 15, 16, 17, 100, 1000] {
            for threads in 1..5 {
                let mut next = 0;
                for t in 0..threads {
                    let r = split(n, 16, t, threads);
                    assert_eq!(r.start, next.min(n));
                    assert!(r.end >= r.start);
                    next = r.end;
                }
                assert_eq!(next, n, "n={n} threads={threads}");
            }
        }
    }

    #[test]
    fn parallel_for_visits_each_item_once_and_nested_calls_run() {
        let pool = Pool::with_spin(3, Duration::from_micros(10)).expect("spawn");
        let counts: Vec<AtomicUsize> = (0..257).map(|_| AtomicUsize::new(0)).collect();
        for _round in 0..50 {
            pool.parallel_for(counts.len(), |i| {
                // A nested call must not deadlock: it runs on the calling thread.
                pool.parallel_for(1, |_| {});
                counts[i].fetch_add(1, Ordering::Relaxed);
            });
        }
        assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 50));
    }

    #[test]
    fn parked_workers_wake_up() {
        let pool = Pool::with_spin(2, Duration::ZERO).expect("spawn");
        let hits = AtomicUsize::new(0);
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(1));
            pool.run(&|_| {
                hits.fetch_add(1, Ordering::Relaxed);
            });
        }
        assert_eq!(hits.load(Ordering::Relaxed), 40);
    }

    #[test]
    fn worker_panic_reaches_the_caller() {
        let pool = Pool::with_spin(2, Duration::ZERO).expect("spawn");
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.run(&|t| assert_ne!(t, 1, "worker 1 fails on purpose"));
        }));
        assert!(r.is_err());
        // The pool stays usable.
        let hits = AtomicUsize::new(0);
        pool.run(&|_| {
            hits.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(hits.load(Ordering::Relaxed), 2);
    }
}
