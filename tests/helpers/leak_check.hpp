// A GoogleTest listener that fails any test which leaks a descriptor or a child process.
#pragma once

namespace mp::test {

/// Installs the leak checker as a GoogleTest event listener (call once, after InitGoogleTest).
void install_leak_check();

}  // namespace mp::test
