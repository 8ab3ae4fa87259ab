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

/// Machine code that makes a table of system calls in a row, for a tracer that would
/// otherwise inject them one at a time (each a handful of ptrace stops). Entered with
/// `rbx` at the table and `r12` its number of entries, it makes each entry's call, puts
/// its result in the entry's first word (in place of the call's number), and stops at
/// its final `int3`, after the last entry or at the first that failed (a result in
/// -4095..-1) and may not fail; then `r12` is the number of entries not done (0: all
/// were) and `rax` the last result. It uses no stack and no memory but the table.
///
/// An entry is [`BATCH_ENTRY`] bytes: eight native-endian u64, the call's number, its
/// six arguments, then flags (bit 0: the call may fail, its error is ignored).
///
/// ```text
///  0: test r12, r12         ; 4d 85 e4
///  3: jz done               ; 74 37
///  5: mov rax, [rbx]        ; 48 8b 03
///  8: mov rdi, [rbx+8]      ; ... rsi, rdx, r10, r8, r9 from [rbx+16] .. [rbx+48]
/// 20: syscall               ; 0f 05
/// 22: mov [rbx], rax        ; 48 89 03
/// 25: cmp rax, -4095        ; 48 3d 01 f0 ff ff
/// 2b: jb ok                 ; 72 06
/// 2d: test byte [rbx+56], 1 ; f6 43 38 01
/// 31: jz done               ; 74 09
/// 33: ok: add rbx, 64       ; 48 83 c3 40
/// 37: dec r12               ; 49 ff cc
/// 3a: jmp 0                 ; eb c4
/// 3c: done: int3            ; cc
/// ```
pub const BATCH_CODE: [u8; 61] = [
    0x4d, 0x85, 0xe4, 0x74, 0x37, 0x48, 0x8b, 0x03, 0x48, 0x8b, 0x7b, 0x08, 0x48, 0x8b, 0x73, 0x10,
    0x48, 0x8b, 0x53, 0x18, 0x4c, 0x8b, 0x53, 0x20, 0x4c, 0x8b, 0x43, 0x28, 0x4c, 0x8b, 0x4b, 0x30,
    0x0f, 0x05, 0x48, 0x89, 0x03, 0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, 0x72, 0x06, 0xf6, 0x43, 0x38,
    0x01, 0x74, 0x09, 0x48, 0x83, 0xc3, 0x40, 0x49, 0xff, 0xcc, 0xeb, 0xc4, 0xcc,
];

/// Bytes of one entry of a [`BATCH_CODE`] table.
pub const BATCH_ENTRY: usize = 64;

/// Bit 0 of an entry's flags: the call may fail.
pub const BATCH_MAY_FAIL: u64 = 1;
