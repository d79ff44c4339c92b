//! The stack checks run on.
//!
//! A check recurses along the schema and the document (jsonschema) and
//! along rhai's expression and call nesting. Each is bounded when a chain
//! is declared (schema nesting and `$ref` chains in `schema`, expression
//! and call depth in [`crate::Limits`], document depth in core's limits),
//! and a check runs on a thread whose stack is sized for those bounds,
//! whatever thread asked: a store's writer, a runtime's blocking pool
//! (2 MiB stacks), the CLI's main thread.

use std::cell::Cell;

/// Stack of the threads checks run on. The declared bounds allow
/// (document depth + 1) × (schema nesting + `$ref` chain) ≈ 8,500 nested
/// subschemas, and rhai 32 levels of calls and of expressions; jsonschema's
/// frames for one subschema are under 2 KiB even in a debug build, rhai's
/// for one call level tens of KiB: 64 MiB leaves a wide margin. Only the
/// pages a check touches are ever committed.
pub const CHECK_STACK_BYTES: usize = 64 << 20;

thread_local! {
    /// Whether this thread has [`CHECK_STACK_BYTES`] (one of ours).
    static ON_CHECK_STACK: Cell<bool> = const { Cell::new(false) };
}

/// Declares that this thread was started with at least
/// [`CHECK_STACK_BYTES`] of stack, so checks run on it at once instead of
/// on a thread started for each (a server's runtime sets its threads'
/// stack size and calls this from `on_thread_start`). Calling it on a
/// thread with a smaller stack gives up the guarantee that no check can
/// overflow it.
pub fn assume_check_stack() {
    ON_CHECK_STACK.with(|on| on.set(true));
}

/// Runs `f` on a thread with [`CHECK_STACK_BYTES`] of stack, or at once
/// when this thread is one. An error says why it could not run (no thread
/// could be started, or `f` panicked).
pub fn on_check_stack<T: Send>(f: impl FnOnce() -> T + Send) -> Result<T, String> {
    if ON_CHECK_STACK.with(Cell::get) {
        return Ok(f());
    }
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("confstrata-check".into())
            .stack_size(CHECK_STACK_BYTES)
            .spawn_scoped(scope, || {
                ON_CHECK_STACK.with(|on| on.set(true));
                f()
            })
            .map_err(|e| format!("cannot start a thread to check on: {e}"))?
            .join()
            .map_err(|_| "the check failed unexpectedly".to_owned())
    })
}
