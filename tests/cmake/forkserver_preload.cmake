# mp::set_forkserver_preload takes only calls that ship: anything else is a compile-time error.
mp_compile_check(preload_compile.control_compiles preload_ok.cpp ok "")
mp_compile_check(preload_compile.unshippable_argument preload_unshippable.cpp fail
                 "set_forkserver_preload: the function and its arguments must ship")
