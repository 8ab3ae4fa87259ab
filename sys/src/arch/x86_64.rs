//! What om-sys knows of x86-64.

/// The regset of the XSAVE area (`NT_X86_XSTATE`): x87, SSE, AVX, AVX-512 ...
pub const NT_X86_XSTATE: libc::c_int = 0x202;

/// Largest XSAVE area accepted (the CPUs seen so far use 2688 bytes).
pub const XSTATE_MAX: usize = 16384;

/// The XSAVE features this kernel enabled (XCR0), which every process of this machine
/// runs with; 0 on a CPU without XSAVE.
pub fn xcr0() -> u64 {
    if !std::arch::is_x86_feature_detected!("xsave") {
        return 0;
    }
    // SAFETY: XGETBV(0) only reads XCR0; the CPU supports XSAVE (checked above) and the
    // kernel enabled it (is_x86_feature_detected checks OSXSAVE too).
    unsafe { xgetbv0() }
}

#[target_feature(enable = "xsave")]
unsafe fn xgetbv0() -> u64 {
    std::arch::x86_64::_xgetbv(0)
}

/// The XCR0 an XSAVE area read by `PTRACE_GETREGSET` (`NT_X86_XSTATE`) was saved with:
/// the kernel puts it in the first 8 bytes of the area's software-reserved bytes
/// (`USER_XSTATE_XCR0_WORD`, byte 464); 0 if the area is shorter.
pub fn xstate_xcr0(xstate: &[u8]) -> u64 {
    xstate
        .get(464..472)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_ne_bytes)
}
