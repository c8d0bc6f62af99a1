//! The real compiler on the real kernel source, without a GPU: NVRTC compiles [`SOURCE`] with the
//! backend's own options ([`compile_source`]) for every architecture this crate claims, `ptxas`
//! assembles the PTX and reports registers and spills, and the PTX `.entry` signatures are checked
//! against the parameter lists the launch code is held to ([`Kernel::params`]).
//!
//! NVRTC and ptxas need no driver or GPU; `scripts/ci-cuda.sh` installs them from PyPI
//! (`nvidia-cuda-nvrtc-cu12`, `nvidia-cuda-nvcc-cu12`) into `target/`, points the loader at the
//! library (`LD_LIBRARY_PATH`) and `BIO_PTXAS` at ptxas, and sets `BIO_REQUIRE_NVRTC=1` so that a
//! missing library fails instead of skipping. Without them (plain `cargo test`) these tests print
//! that they skipped.
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use crate::compile::{Compiled, compile_source};
use crate::kernels::{Kernel, SOURCE};

/// The architectures this crate claims: A100 (sm_80) and H100 / H200 (sm_90).
const ARCHES: [&str; 2] = ["80", "90"];

/// Kernels that run every training step or attack step (the conv kernels: every step of the conv
/// rules): no spills allowed there.
const HOT: [Kernel; 17] = [
    Kernel::Map,
    Kernel::Zip,
    Kernel::ZipAssign,
    Kernel::Lincomb,
    Kernel::ReduceRows,
    Kernel::KthLargestRows,
    Kernel::AdamStep,
    Kernel::SparseMatmul,
    Kernel::PlasticityStep,
    Kernel::Unfold,
    Kernel::Fold,
    Kernel::MaxPool,
    Kernel::MaxPoolBackward,
    Kernel::KwtaRows,
    Kernel::RelativeToRowMax,
    Kernel::UnitL2Rows,
    Kernel::CountPositive,
];

fn required() -> bool {
    std::env::var_os("BIO_REQUIRE_NVRTC").is_some_and(|v| v != "0")
}

/// True when libnvrtc can be loaded; otherwise prints why the test skipped (or panics when
/// `BIO_REQUIRE_NVRTC` is set).
fn nvrtc_present(test: &str) -> bool {
    // SAFETY: only tries to dlopen the library; calls no NVRTC function.
    if unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return true;
    }
    let path = std::env::var("LD_LIBRARY_PATH").unwrap_or_default();
    assert!(!required(), "{test}: BIO_REQUIRE_NVRTC is set but libnvrtc cannot be loaded (LD_LIBRARY_PATH={path})");
    eprintln!("{test}: SKIPPED: libnvrtc not found (scripts/ci-cuda.sh installs it from PyPI)");
    false
}

fn compiled(arch: &str) -> Compiled {
    compile_source(SOURCE, Some(&format!("compute_{arch}")))
        .unwrap_or_else(|e| panic!("NVRTC rejected the kernels for compute_{arch}: {e}"))
}

/// The `.entry` functions of a PTX module and their parameters' types, e.g. `.u64`.
fn ptx_entries(ptx: &str) -> BTreeMap<String, Vec<String>> {
    let mut entries = BTreeMap::new();
    let mut rest = ptx;
    while let Some(at) = rest.find(".entry ") {
        let after = &rest[at + ".entry ".len()..];
        let open = after.find('(').expect("an .entry has a parameter list");
        let close = after.find(')').expect("an .entry's parameter list is closed");
        let name = after[..open].trim().to_owned();
        let params = after[open + 1..close]
            .split(',')
            .filter_map(|p| {
                let mut words = p.split_whitespace();
                (words.next() == Some(".param")).then(|| words.next().expect("a .param has a type").to_owned())
            })
            .collect();
        entries.insert(name, params);
        rest = &after[close..];
    }
    entries
}

#[test]
fn nvrtc_compiles_every_kernel_for_each_claimed_arch_without_warnings() {
    if !nvrtc_present("nvrtc_compiles_every_kernel") {
        return;
    }
    for arch in ARCHES {
        let c = compiled(arch);
        assert!(c.log.is_empty(), "NVRTC warned for compute_{arch}:\n{}", c.log);
        assert!(c.ptx.contains(&format!(".target sm_{arch}")), "PTX for compute_{arch} targets something else");
        eprintln!("compute_{arch}: {} bytes of PTX, no warnings", c.ptx.len());
    }
}

/// The warning check can fail: a source with an unused variable produces a log.
#[test]
fn nvrtc_reports_warnings_in_its_log() {
    if !nvrtc_present("nvrtc_reports_warnings") {
        return;
    }
    let src = "extern \"C\" __global__ void k(float* o) { int unused = 3; o[0] = 1.0f; }";
    let c = compile_source(src, Some("compute_90")).expect("a valid program compiles");
    assert!(!c.log.is_empty(), "NVRTC said nothing about an unused variable");
    assert!(compile_source("extern \"C\" __global__ void k( {", Some("compute_90")).is_err());
}

#[test]
fn every_launched_kernel_is_in_the_ptx_with_the_parameters_the_rust_side_passes() {
    if !nvrtc_present("ptx_signatures") {
        return;
    }
    for arch in ARCHES {
        let entries = ptx_entries(&compiled(arch).ptx);
        for k in Kernel::ALL {
            let got =
                entries.get(k.name()).unwrap_or_else(|| panic!("compute_{arch}: no .entry {} in the PTX", k.name()));
            let want: Vec<&str> = k.params().iter().map(|p| p.ptx_type()).collect();
            assert_eq!(
                got,
                &want,
                "compute_{arch}: .entry {} takes {got:?}, the launch code passes {want:?}",
                k.name()
            );
        }
        assert_eq!(entries.len(), Kernel::ALL.len(), "compute_{arch}: the PTX has entries the Rust side never loads");
    }
}

/// One function's line of `ptxas -v`.
#[derive(Debug, Default, Clone, Copy)]
struct Resources {
    registers: u32,
    spill_stores: u32,
    spill_loads: u32,
    stack: u32,
    shared: u32,
}

/// Parses `ptxas -v` output into per-function resources.
fn ptxas_resources(log: &str) -> BTreeMap<String, Resources> {
    let mut out = BTreeMap::new();
    let mut current: Option<String> = None;
    let number_before = |line: &str, unit: &str| -> Option<u32> {
        let end = line.find(unit)?;
        line[..end].split_whitespace().last()?.parse().ok()
    };
    for line in log.lines() {
        if let Some(at) = line.find("Function properties for ") {
            current = Some(line[at + "Function properties for ".len()..].trim().to_owned());
        } else if let Some(at) = line.find("Compiling entry function '") {
            let name = &line[at + "Compiling entry function '".len()..];
            current = Some(name[..name.find('\'').unwrap_or(name.len())].to_owned());
        }
        let Some(name) = current.clone() else { continue };
        let r = out.entry(name).or_insert_with(Resources::default);
        if line.contains("spill stores") {
            r.stack = number_before(line, "bytes stack frame").unwrap_or(0);
            r.spill_stores = number_before(line, "bytes spill stores").unwrap_or(0);
            r.spill_loads = number_before(line, "bytes spill loads").unwrap_or(0);
        }
        if line.contains("Used ") && line.contains(" registers") {
            r.registers = number_before(line, " registers").unwrap_or(0);
            r.shared = number_before(line, " bytes smem").unwrap_or(0);
        }
    }
    out
}

fn ptxas() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("BIO_PTXAS") {
        return Some(PathBuf::from(p));
    }
    Command::new("ptxas").arg("--version").output().ok().filter(|o| o.status.success()).map(|_| PathBuf::from("ptxas"))
}

#[test]
fn ptxas_assembles_the_kernels_without_spills_in_the_hot_kernels() {
    if !nvrtc_present("ptxas_resources") {
        return;
    }
    let Some(ptxas) = ptxas() else {
        assert!(!required(), "ptxas_resources: BIO_REQUIRE_NVRTC is set but BIO_PTXAS is not and no ptxas is on PATH");
        eprintln!("ptxas_resources: SKIPPED: no ptxas (set BIO_PTXAS; scripts/ci-cuda.sh installs it from PyPI)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("bio-cuda-ptxas-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut report = String::new();
    for arch in ARCHES {
        let ptx_path = dir.join(format!("kernels_sm{arch}.ptx"));
        std::fs::write(&ptx_path, compiled(arch).ptx).expect("write PTX");
        let out = Command::new(&ptxas)
            .args(["-v", &format!("-arch=sm_{arch}"), "-o"])
            .arg(dir.join(format!("kernels_sm{arch}.cubin")))
            .arg(&ptx_path)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", ptxas.display()));
        let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "ptxas failed for sm_{arch}:\n{log}");
        assert!(!log.to_lowercase().contains("warning"), "ptxas warned for sm_{arch}:\n{log}");
        let resources = ptxas_resources(&log);
        report.push_str(&format!(
            "sm_{arch}: kernel, registers/thread, spill stores/loads (bytes), stack (bytes), static smem (bytes)\n"
        ));
        for k in Kernel::ALL {
            let r =
                resources.get(k.name()).unwrap_or_else(|| panic!("ptxas -v says nothing about {}:\n{log}", k.name()));
            assert!(r.registers > 0, "no register count parsed for {} on sm_{arch}:\n{log}", k.name());
            report.push_str(&format!(
                "  {:<22} {:>3}  {}/{}  {}  {}\n",
                k.name(),
                r.registers,
                r.spill_stores,
                r.spill_loads,
                r.stack,
                r.shared
            ));
            if HOT.contains(&k) {
                assert!(
                    r.spill_stores == 0 && r.spill_loads == 0,
                    "{} spills to local memory on sm_{arch}: {r:?}\n{log}",
                    k.name()
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("{report}");
}

#[test]
fn the_ptxas_parser_reads_registers_and_spills() {
    let log = "ptxas info    : Compiling entry function 'bio_x' for 'sm_90'\n\
               ptxas info    : Function properties for bio_x\n\
               \x20   16 bytes stack frame, 8 bytes spill stores, 12 bytes spill loads\n\
               ptxas info    : Used 40 registers, used 1 barriers, 33792 bytes smem, 400 bytes cmem[0]\n";
    let r = ptxas_resources(log)["bio_x"];
    assert_eq!((r.registers, r.spill_stores, r.spill_loads, r.stack, r.shared), (40, 8, 12, 16, 33792));
}

#[test]
fn the_ptx_parser_reads_entry_signatures() {
    let ptx = ".visible .entry bio_a(\n\t.param .u64 bio_a_param_0,\n\t.param .u32 bio_a_param_1\n)\n{\n}\n\
               .visible .entry bio_b(\n\t.param .f32 bio_b_param_0\n)\n{\n}\n";
    let e = ptx_entries(ptx);
    assert_eq!(e["bio_a"], [".u64", ".u32"]);
    assert_eq!(e["bio_b"], [".f32"]);
}
