//! clone3 in the manner of vfork: the child shares the parent's memory and
//! runs on a stack of its own while the calling thread waits for its exec
//! or exit. Nothing of the parent's address space is copied, so a launch
//! from a daemon with thousands of containers costs no page-table copy, no
//! copy-on-write faults in the daemon afterwards, and no TLB shootdowns on
//! its other threads (a plain fork of the agent did all three per launch).
//!
//! Only x86_64 has the trampoline that starts the child on its stack; other
//! architectures clone like fork, with the same child code.

use std::ffi::c_void;

use crate::errno::Errno;

/// The child's side: never returns (it execs or exits).
pub(crate) type Entry = unsafe extern "C" fn(*mut c_void) -> !;

/// The child's stack: a few pages of the child's work (no allocation, one
/// PATH_MAX buffer) fit many times over.
#[cfg(target_arch = "x86_64")]
const STACK_SIZE: usize = 256 * 1024;

/// Clones with `clone_args` (its stack fields are filled here) and runs
/// `entry(arg)` in the child; returns the child's pid once the child has
/// exec'd or exited.
///
/// # Safety
/// `entry` must be safe to run in a child that shares this process's
/// memory, with this thread's TLS, while this thread is suspended: raw
/// system calls on memory that stays unmodified until the clone returns.
pub(crate) unsafe fn clone_and_run(
    clone_args: &mut libc::clone_args,
    entry: Entry,
    arg: *mut c_void,
) -> Result<i32, Errno> {
    #[cfg(target_arch = "x86_64")]
    {
        let stack = Stack::new(STACK_SIZE)?;
        clone_args.flags |= (libc::CLONE_VM | libc::CLONE_VFORK) as u64;
        clone_args.stack = stack.base as u64;
        clone_args.stack_size = stack.len as u64;
        // No handler of this process may run in the child, which shares its
        // memory: signals stay blocked until the child has reset them.
        let blocked = SignalsBlocked::new();
        // SAFETY: the caller vouches for `entry`; the stack lives until the
        // clone returns, which with CLONE_VFORK is after the child's exec
        // or exit.
        let ret = unsafe { x86_64::clone3(clone_args, entry, arg) };
        drop(blocked);
        drop(stack);
        if ret < 0 {
            return Err(Errno(i32::try_from(-ret).unwrap_or(libc::EINVAL)));
        }
        Ok(ret as i32)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // SAFETY: clone3 without CLONE_VM duplicates this process like
        // fork; the child runs `entry`, which never returns.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                clone_args as *const libc::clone_args,
                std::mem::size_of::<libc::clone_args>(),
            )
        };
        if ret == 0 {
            // SAFETY: we are the child; see the caller's contract.
            unsafe { entry(arg) }
        }
        if ret < 0 {
            return Err(Errno::last());
        }
        Ok(ret as i32)
    }
}

#[cfg(target_arch = "x86_64")]
mod x86_64 {
    use std::ffi::c_void;

    use super::Entry;

    /// The raw clone3 system call; in the child, calls `entry(arg)` on the
    /// new stack and never comes back into Rust code of the parent's frame.
    ///
    /// # Safety
    /// `args` must describe a valid, 16-byte aligned stack, and `entry`
    /// must never return.
    pub(super) unsafe fn clone3(args: &libc::clone_args, entry: Entry, arg: *mut c_void) -> i64 {
        let ret: i64;
        // SAFETY: the syscall clobbers rax (result), rcx and r11. In the
        // parent execution continues after label 2 with only those changed.
        // In the child (rax = 0) the stack pointer is the top of the new
        // stack, so the call leaves the return address there, never on the
        // parent's stack; `entry` diverges and ud2 is unreachable.
        unsafe {
            std::arch::asm!(
                "syscall",
                "test rax, rax",
                "jnz 2f",
                "xor ebp, ebp",
                "mov rdi, r9",
                "call r8",
                "ud2",
                "2:",
                inlateout("rax") libc::SYS_clone3 => ret,
                in("rdi") args as *const libc::clone_args,
                in("rsi") std::mem::size_of::<libc::clone_args>(),
                in("r8") entry,
                in("r9") arg,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        ret
    }
}

/// An anonymous mapping for the child's stack, a guard page at its bottom.
#[cfg(target_arch = "x86_64")]
struct Stack {
    map: *mut c_void,
    map_len: usize,
    base: *mut c_void,
    len: usize,
}

#[cfg(target_arch = "x86_64")]
impl Stack {
    fn new(len: usize) -> Result<Self, Errno> {
        const GUARD: usize = 4096;
        let map_len = len + GUARD;
        // SAFETY: a fresh private anonymous mapping, owned by the Stack.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        let stack = Stack {
            map,
            map_len,
            // SAFETY: GUARD < map_len, inside the mapping.
            base: unsafe { map.cast::<u8>().add(GUARD) }.cast(),
            len,
        };
        // SAFETY: the first page of our own mapping becomes inaccessible, so
        // an overflow faults instead of writing below the stack.
        if unsafe { libc::mprotect(map, GUARD, libc::PROT_NONE) } == -1 {
            return Err(Errno::last());
        }
        Ok(stack)
    }
}

#[cfg(target_arch = "x86_64")]
impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; the child that
        // used it has exec'd or exited.
        unsafe {
            libc::munmap(self.map, self.map_len);
        }
    }
}

/// This thread's signal mask with every signal blocked, restored on drop.
#[cfg(target_arch = "x86_64")]
struct SignalsBlocked(libc::sigset_t);

#[cfg(target_arch = "x86_64")]
impl SignalsBlocked {
    fn new() -> Self {
        // SAFETY: sigset_t is plain data; sigfillset and pthread_sigmask
        // write only the sets passed, and this thread's mask.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
            SignalsBlocked(old)
        }
    }
}

#[cfg(target_arch = "x86_64")]
impl Drop for SignalsBlocked {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved in `new` on the same thread.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut());
        }
    }
}
