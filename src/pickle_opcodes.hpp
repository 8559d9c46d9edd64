// The pickle machine's opcodes that mp::pickle writes or reads (CPython's Lib/pickle.py names),
// shared by the encoder and the decoder.
#pragma once

#include <cstdint>

namespace mp::pickle::op {

inline constexpr std::uint8_t MARK = '(', STOP = '.', POP = '0', POP_MARK = '1', DUP = '2';
inline constexpr std::uint8_t BININT = 'J', BININT1 = 'K', BININT2 = 'M', NONE = 'N';
inline constexpr std::uint8_t BINFLOAT = 'G', BINUNICODE = 'X', BINSTRING = 'T';
inline constexpr std::uint8_t SHORT_BINSTRING = 'U', APPEND = 'a', BUILD = 'b', GLOBAL = 'c';
inline constexpr std::uint8_t DICT = 'd', EMPTY_DICT = '}', APPENDS = 'e', GET = 'g';
inline constexpr std::uint8_t BINGET = 'h', LONG_BINGET = 'j', LIST = 'l', EMPTY_LIST = ']';
inline constexpr std::uint8_t PUT = 'p', BINPUT = 'q', LONG_BINPUT = 'r', SETITEM = 's';
inline constexpr std::uint8_t TUPLE = 't', EMPTY_TUPLE = ')', SETITEMS = 'u', REDUCE = 'R';
// Protocol 2.
inline constexpr std::uint8_t PROTO = 0x80, NEWOBJ = 0x81, TUPLE1 = 0x85, TUPLE2 = 0x86;
inline constexpr std::uint8_t TUPLE3 = 0x87, NEWTRUE = 0x88, NEWFALSE = 0x89, LONG1 = 0x8a;
inline constexpr std::uint8_t LONG4 = 0x8b;
// Protocol 3.
inline constexpr std::uint8_t BINBYTES = 'B', SHORT_BINBYTES = 'C';
// Protocol 4.
inline constexpr std::uint8_t SHORT_BINUNICODE = 0x8c, BINUNICODE8 = 0x8d, BINBYTES8 = 0x8e;
inline constexpr std::uint8_t EMPTY_SET = 0x8f, ADDITEMS = 0x90, FROZENSET = 0x91;
inline constexpr std::uint8_t NEWOBJ_EX = 0x92, STACK_GLOBAL = 0x93, MEMOIZE = 0x94;
inline constexpr std::uint8_t FRAME = 0x95;
// Protocol 5.
inline constexpr std::uint8_t BYTEARRAY8 = 0x96, NEXT_BUFFER = 0x97, READONLY_BUFFER = 0x98;

}  // namespace mp::pickle::op
