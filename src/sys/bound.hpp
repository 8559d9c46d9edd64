// Calls a fork child makes without going through the PLT.
#pragma once

namespace mp::sys {

/// `f` itself, opaque to the optimizer: calls through it go to the address the dynamic linker
/// bound at load, not through the PLT. Through the PLT, a function's first call is bound lazily,
/// by the dynamic linker, in whichever process makes it; a fork child binding it walks the
/// symbol tables of every loaded library, pages it has not mapped yet (fork does not copy the
/// page tables of file-backed mappings), which costs more page faults than the whole rest of a
/// no-op child. Even a PLT stub the parent has bound costs the child a fault on the page of
/// stubs. For the calls a fork child makes.
template <class F>
F* bound(F* f) noexcept {
    asm("" : "+r"(f));
    return f;
}

}  // namespace mp::sys
