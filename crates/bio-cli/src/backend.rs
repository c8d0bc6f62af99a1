//! `--backend cpu|cuda|auto` for every command: resolved by `bio_run::resolve`, with the `auto`
//! choice said on stderr unless quiet. Commands are written once, generically over
//! [`bio_core::Backend`], and [`with_backend!`](crate::backend::with_backend) runs the copy for the
//! resolved backend:
//!
//! ```ignore
//! pub fn run(args: Args) -> Result<()> {
//!     with_backend!(args.backend, args.json, |b| run_on(b, &args))
//! }
//! ```

/// Resolves `choice`, printing `auto`'s note unless `quiet` (or `--quiet`).
pub fn resolve(choice: bio_run::BackendChoice, quiet: bool) -> anyhow::Result<bio_run::Resolved> {
    let (resolved, note) = bio_run::resolve(choice)?;
    if let Some(note) = note
        && !quiet
        && !crate::output::quiet()
    {
        eprintln!("{note}");
    }
    Ok(resolved)
}

/// `with_backend!(choice, quiet, |b| body)`: resolves `choice` with [`resolve`], binds the concrete
/// backend (by reference) to `b` and evaluates `body`, an `anyhow::Result<T>`; the whole expression
/// is that result, or the resolution error.
macro_rules! with_backend {
    ($choice:expr, $quiet:expr, |$b:ident| $body:expr) => {
        match $crate::backend::resolve($choice, $quiet) {
            ::std::result::Result::Err(e) => ::std::result::Result::Err(e),
            ::std::result::Result::Ok(resolved) => bio_run::on_backend!(&resolved, |$b| $body),
        }
    };
}
pub(crate) use with_backend;
