# The codec must reject, at compile time and with the reason, the trivially copyable types it
# cannot check or cannot send without their padding (docs/reduction.md).
mp_compile_check(callable_compile.codec_control_plain_structs_compile codec_ok.cpp ok "")
mp_compile_check(callable_compile.codec_struct_holding_variant codec_struct_variant.cpp fail
  "holds a pointer, a reference, or a union")
mp_compile_check(callable_compile.codec_large_struct_with_padding codec_large_padded.cpp fail
  "has padding or bool members and is larger than the codec maps")
mp_compile_check(callable_compile.lambda_capturing_pointer task_captures_pointer.cpp fail
  "task's target cannot be shipped to a worker process")
