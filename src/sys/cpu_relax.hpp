// The pause instruction for spin loops: tells the core that this thread is waiting, so the
// sibling hyperthread (or the peer the spinner waits for) gets the execution resources.
#pragma once

namespace mp::sys {

/// One spin-wait hint (x86 PAUSE, AArch64 YIELD; nothing elsewhere).
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield" ::: "memory");
#endif
}

}  // namespace mp::sys
