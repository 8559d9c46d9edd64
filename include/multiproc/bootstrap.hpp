// mp::init: the C++ form of `if __name__ == "__main__":`. Call it first thing in main().
// In a process started with the spawn method it runs that child's work and exits; in any
// other process it returns at once.
#pragma once

namespace mp {

/// Runs the child's work and exits if this process is a spawned multiproc child; else returns.
void init(int argc, char** argv);

}  // namespace mp
