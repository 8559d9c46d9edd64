// A plugin linked with -s (no .symtab): what a stripped module can ship. Its exported function
// is in .dynsym and can be verified; a function with internal linkage cannot, and is refused.
namespace {

int stripped_hidden_twice(int x) { return 2 * x; }

}  // namespace

extern "C" {

/// x + 1 (exported: in the dynamic symbol table).
int callable_stripped_exported(int x) { return x + 1; }

/// The address of a function with internal linkage (in no symbol table once stripped).
int (*callable_stripped_hidden())(int) { return &stripped_hidden_twice; }
}
