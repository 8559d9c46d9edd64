// mp::SigintGuard: the public face of src/sys/signals (the handler and the wait loop).
#include "multiproc/signals.hpp"

#include "sys/signals.hpp"

namespace mp {

SigintGuard::SigintGuard() { sys::sigint_enter(); }

SigintGuard::~SigintGuard() { sys::sigint_leave(); }

void throw_if_interrupted() { sys::throw_if_sigint(sys::Interruptible::yes); }

}  // namespace mp
