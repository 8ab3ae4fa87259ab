//! What om-sys knows of x86-64.

/// The regset of the XSAVE area (`NT_X86_XSTATE`): x87, SSE, AVX, AVX-512 ...
pub const NT_X86_XSTATE: libc::c_int = 0x202;

/// Largest XSAVE area accepted (the CPUs seen so far use 2688 bytes).
pub const XSTATE_MAX: usize = 16384;
