//! Compiling the kernel source (`kernels::SOURCE`) with NVRTC: the one place that sets the options, used by the backend at run
//! time and by the NVRTC test (`nvrtc_check`), so CI compiles exactly what a GPU compiles.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};

use cudarc::nvrtc::result;

#[cfg(doc)]
use crate::kernels::SOURCE;

/// The program name NVRTC reports in its messages.
const PROGRAM_NAME: &str = "bio_cuda_kernels.cu";

/// NVRTC options: round like the CPU code (no contraction into FMA, IEEE division and square root,
/// subnormals kept, hence no fast math), for `arch` (e.g. `compute_90`) or NVRTC's default target.
pub(crate) fn nvrtc_options(arch: Option<&str>) -> Vec<String> {
    let mut options: Vec<String> =
        ["--fmad=false", "--prec-div=true", "--prec-sqrt=true", "--ftz=false"].map(String::from).to_vec();
    options.extend(arch.map(|a| format!("--gpu-architecture={a}")));
    options
}

/// What NVRTC made of [`SOURCE`].
pub(crate) struct Compiled {
    /// The PTX text.
    pub(crate) ptx: String,
    /// NVRTC's log: warnings (empty when there are none). Read by the NVRTC test.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) log: String,
}

/// Compiles `source` ([`SOURCE`] but for tests) with [`nvrtc_options`]; `Err` holds NVRTC's error
/// and log. The caller must have checked that libnvrtc can be loaded
/// (`cudarc::nvrtc::sys::is_culib_present`): cudarc panics on a first call otherwise.
pub(crate) fn compile_source(source: &str, arch: Option<&str>) -> Result<Compiled, String> {
    let src = CString::new(source).map_err(|_| "the kernel source contains a NUL byte".to_owned())?;
    let name = CString::new(PROGRAM_NAME).expect("no NUL in the name");
    let prog = result::create_program(&src, Some(&name)).map_err(|e| format!("nvrtcCreateProgram: {e}"))?;
    let options = nvrtc_options(arch);
    // SAFETY: `prog` was just created from `src` and `name`, which outlive every use below; it is
    // destroyed exactly once, at the end.
    unsafe {
        let compiled = result::compile_program(prog, &options);
        let log = result::get_program_log(prog).map(|raw| text(&raw)).unwrap_or_default();
        let outcome = match compiled {
            Ok(()) => result::get_ptx(prog)
                .map(|raw| Compiled { ptx: text(&raw), log: log.trim().to_owned() })
                .map_err(|e| format!("nvrtcGetPTX: {e}")),
            Err(e) => Err(format!("{e} with options {options:?}:\n{log}")),
        };
        let _ = result::destroy_program(prog);
        outcome
    }
}

/// A NUL-terminated buffer from NVRTC as a `String`.
fn text(raw: &[std::ffi::c_char]) -> String {
    // SAFETY: NVRTC's log and PTX buffers are NUL-terminated (their sizes include the NUL).
    let bytes: Vec<u8> = raw.iter().map(|&c| c as u8).collect();
    CStr::from_bytes_until_nul(&bytes).map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}
