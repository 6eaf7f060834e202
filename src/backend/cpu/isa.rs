//! Which vector instructions the CPU backend's own kernels use: the register tiles
//! (`tile`) and the activations. Chosen once per process by `EBM_CPU_TILES` (the CLI's
//! `--cpu-tiles`), so that a run on an AVX-512 machine can also show what an AVX2-only CPU
//! does, and so the two kinds of tile can be compared (they give the same bits).

use std::sync::OnceLock;

/// An instruction set the tiles run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512F: 32 registers of 16 floats.
    Avx512,
    /// AVX2 with FMA: 16 registers of 8 floats.
    Avx2,
}

impl Isa {
    /// Every kind, widest first.
    pub const ALL: [Isa; 2] = [Isa::Avx512, Isa::Avx2];

    /// Its value of `EBM_CPU_TILES` / `--cpu-tiles`.
    pub fn value(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2",
        }
    }

    /// Its name, as `ebm info` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "AVX-512",
            Isa::Avx2 => "AVX2",
        }
    }

    /// Whether this CPU has it.
    pub fn supported(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            match self {
                Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
                Isa::Avx2 => {
                    std::arch::is_x86_feature_detected!("avx2")
                        && std::arch::is_x86_feature_detected!("fma")
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = self;
            false
        }
    }
}

/// What `EBM_CPU_TILES` asks for: `auto` (or unset, or empty) the widest kind this CPU has,
/// `avx512` or `avx2` that kind (an error if the CPU lacks it), `off` no tiles (every
/// product by im2col and the `gemm` crate). The error names the value and the problem.
pub fn choose(value: &str) -> Result<Option<Isa>, String> {
    let wanted = match value {
        "" | "auto" => return Ok(Isa::ALL.into_iter().find(|isa| isa.supported())),
        "off" => return Ok(None),
        _ => Isa::ALL.into_iter().find(|isa| isa.value() == value),
    };
    let Some(wanted) = wanted else {
        return Err(format!("{value:?}: expected auto, avx512, avx2 or off"));
    };
    if wanted.supported() {
        Ok(Some(wanted))
    } else {
        Err(format!("{value}: this CPU has no {}", wanted.name()))
    }
}

/// The kind the tiles run on in this process, `None` if they do not run: chosen once, by
/// `EBM_CPU_TILES` ([`choose`]). The CLI refuses a bad value up front; a library user's bad
/// value is reported on stderr once and taken as `auto`.
pub fn tiles() -> Option<Isa> {
    static TILES: OnceLock<Option<Isa>> = OnceLock::new();
    *TILES.get_or_init(|| {
        let value = std::env::var("EBM_CPU_TILES").unwrap_or_default();
        choose(&value).unwrap_or_else(|problem| {
            eprintln!("warning: EBM_CPU_TILES={problem}; using auto");
            choose("auto").unwrap_or(None)
        })
    })
}

/// Whether the element-wise kernels may use AVX-512: the CPU has it and the tiles were not
/// held to AVX2 (which stands for a CPU without it). Their results are the same either way.
pub fn avx512_allowed() -> bool {
    Isa::Avx512.supported() && tiles() != Some(Isa::Avx2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choose_reads_the_switch() {
        assert_eq!(choose("off"), Ok(None));
        assert_eq!(choose("auto"), choose(""));
        let widest = Isa::ALL.into_iter().find(|i| i.supported());
        assert_eq!(choose("auto"), Ok(widest));
        for isa in Isa::ALL {
            match choose(isa.value()) {
                Ok(chosen) => assert!(isa.supported() && chosen == Some(isa)),
                Err(e) => assert!(!isa.supported() && e.contains("this CPU has no"), "{e}"),
            }
        }
        let bad = choose("sse").unwrap_err();
        assert!(
            bad.contains("\"sse\"") && bad.contains("expected auto"),
            "{bad}"
        );
    }
}
