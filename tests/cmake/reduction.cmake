# The codec must reject, at compile time and with the reason, the trivially copyable types it
# cannot check or cannot send without their padding (docs/reduction.md). The checker function is
# callable.cmake's (globbed before this file).
mp_callable_compile_check(codec_control_plain_structs_compile codec_ok.cpp ok "")
mp_callable_compile_check(codec_struct_holding_variant codec_struct_variant.cpp fail
  "holds a pointer, a reference, or a union")
mp_callable_compile_check(codec_large_struct_with_padding codec_large_padded.cpp fail
  "has padding or bool members and is larger than the codec maps")
mp_callable_compile_check(lambda_capturing_pointer task_captures_pointer.cpp fail
  "task's target cannot be shipped to a worker process")
