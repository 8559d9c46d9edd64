// The allowlist of globals (docs/pickle.md) and the few constructors it gives meaning to.
//
// Python names a class in a pickle and calls it on load: that is how protocols 2 and 3 spell
// sets, frozensets, bytes and bytearrays (`builtins.set([1, 2])`, `_codecs.encode('ab',
// 'latin1')`), how exceptions and collections.OrderedDict travel, and how a manager's Token is
// rebuilt. Here each allowlisted name maps to a fixed C++ behaviour on plain values; a name off
// the list is refused when it is read, before anything could use it.
#include "pickle_globals.hpp"

#include <algorithm>
#include <array>
#include <string>

#include "multiproc/errors.hpp"

namespace mp::pickle::detail {

namespace {

using py::object;

[[noreturn]] void bad(const std::string& why) { throw DecodeError("mp::pickle: " + why); }

// Python's builtin exception classes (3.11 to 3.13), sorted for binary search.
constexpr std::array<std::string_view, 67> kExceptions = {
    "ArithmeticError",
    "AssertionError",
    "AttributeError",
    "BaseException",
    "BlockingIOError",
    "BrokenPipeError",
    "BufferError",
    "BytesWarning",
    "ChildProcessError",
    "ConnectionAbortedError",
    "ConnectionError",
    "ConnectionRefusedError",
    "ConnectionResetError",
    "DeprecationWarning",
    "EOFError",
    "EncodingWarning",
    "EnvironmentError",
    "Exception",
    "FileExistsError",
    "FileNotFoundError",
    "FloatingPointError",
    "FutureWarning",
    "GeneratorExit",
    "IOError",
    "ImportError",
    "ImportWarning",
    "IndentationError",
    "IndexError",
    "InterruptedError",
    "IsADirectoryError",
    "KeyError",
    "KeyboardInterrupt",
    "LookupError",
    "MemoryError",
    "ModuleNotFoundError",
    "NameError",
    "NotADirectoryError",
    "NotImplementedError",
    "OSError",
    "OverflowError",
    "PendingDeprecationWarning",
    "PermissionError",
    "ProcessLookupError",
    "RecursionError",
    "ReferenceError",
    "ResourceWarning",
    "RuntimeError",
    "RuntimeWarning",
    "StopAsyncIteration",
    "StopIteration",
    "SyntaxError",
    "SyntaxWarning",
    "SystemError",
    "SystemExit",
    "TabError",
    "TimeoutError",
    "TypeError",
    "UnboundLocalError",
    "UnicodeDecodeError",
    "UnicodeEncodeError",
    "UnicodeError",
    "UnicodeTranslateError",
    "UnicodeWarning",
    "UserWarning",
    "ValueError",
    "Warning",
    "ZeroDivisionError",
};

bool is_exception(std::string_view name) {
    return std::binary_search(kExceptions.begin(), kExceptions.end(), name);
}

// queue.Empty and queue.Full, which a manager's queue raises (Empty is _queue.Empty in CPython).
bool is_queue_exception(std::string_view module, std::string_view name) {
    return (module == "_queue" && name == "Empty") ||
           (module == "queue" && (name == "Empty" || name == "Full"));
}

// builtins, spelled as protocol 2 spells it for Python 2 (`__builtin__`, `exceptions`).
bool is_builtins(std::string_view module) {
    return module == "builtins" || module == "__builtin__" || module == "exceptions";
}

const py::global& callee(const object& o) {
    const auto* g = std::get_if<std::shared_ptr<const py::global>>(&o.value());
    if (!g) bad("REDUCE or NEWOBJ on a " + std::string(py::kind_name(o.kind())));
    return **g;
}

const std::vector<object>& arguments(const object& args) {
    if (args.kind() != py::kind::tuple) bad("call arguments that are not a tuple");
    return args.as_sequence();
}

// Takes n copied units from the budget; mp::DecodeError once it is spent.
void charge(std::size_t& budget, std::size_t n) {
    if (n > budget)
        bad("calls that copy more than the pickle's size (a memoized value copied "
            "again and again)");
    budget -= n;
}

// The items of the one iterable argument of set(...) / frozenset(...), none for ().
std::vector<object> iterable(const std::vector<object>& a, std::string_view callee_name) {
    if (a.empty()) return {};
    if (a.size() == 1) {
        switch (a[0].kind()) {
            case py::kind::list:
            case py::kind::tuple: return a[0].as_sequence();
            case py::kind::set:
            case py::kind::frozenset: return a[0].as_set();
            default: break;
        }
    }
    bad(std::string(callee_name) + "() with arguments other than one list, tuple or set");
}

// The bytes of latin-1 text: each code point (from the UTF-8) must be below 256.
std::vector<std::byte> latin1(const std::string& text) {
    std::vector<std::byte> out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c < 0x80) {
            out.push_back(std::byte{c});
        } else if ((c & 0xfe) == 0xc2 && i + 1 < text.size() &&
                   (static_cast<unsigned char>(text[i + 1]) & 0xc0) == 0x80) {
            out.push_back(static_cast<std::byte>(((c & 0x03) << 6) |
                                                 (static_cast<unsigned char>(text[++i]) & 0x3f)));
        } else {
            bad("latin-1 text with a character beyond U+00FF");
        }
    }
    return out;
}

bool is_latin1_name(const object& o) {
    if (o.kind() != py::kind::str) return false;
    const std::string& e = o.as_str();
    return e == "latin1" || e == "latin-1" || e == "iso-8859-1" || e == "iso8859-1";
}

// bytes(), bytes(b), bytearray(), bytearray(b), bytearray(text, 'latin-1').
std::vector<std::byte> byte_arguments(const std::vector<object>& a, std::string_view what) {
    if (a.empty()) return {};
    if (a.size() == 1 && (a[0].kind() == py::kind::bytes || a[0].kind() == py::kind::bytearray))
        return a[0].as_bytes();
    if (a.size() == 2 && a[0].kind() == py::kind::str && is_latin1_name(a[1]))
        return latin1(a[0].as_str());
    bad(std::string(what) + "() with arguments other than bytes or latin-1 text");
}

object instance_of(const py::global& cls, const object& args) {
    return object(std::make_shared<py::instance>(py::instance{cls, args.node<py::tuple>(),
                                                              nullptr}));
}

}  // namespace

py::object find_global(std::string_view module, std::string_view name) {
    const auto make = [](std::string_view m, std::string_view n) {
        return object(std::make_shared<const py::global>(py::global{std::string(m),
                                                                    std::string(n)}));
    };
    if (is_builtins(module)) {
        if (is_exception(name) || name == "set" || name == "frozenset" || name == "bytes" ||
            name == "bytearray" || name == "slice" || name == "list")
            return make("builtins", name);
    } else if ((module == "_codecs" && name == "encode") ||
               (module == "collections" && name == "OrderedDict") ||
               (module == "multiprocessing.managers" && name == "Token") ||
               is_queue_exception(module, name)) {
        return make(module, name);
    }
    bad("global " + std::string(module) + "." + std::string(name) +
        " is not on the allowlist (mp::pickle decodes plain data only; see docs/pickle.md)");
}

py::object call_global(const py::object& callable, const py::object& args, std::size_t& budget) {
    const py::global& g = callee(callable);
    const std::vector<object>& a = arguments(args);
    // Only the conversions copy; an exception or a Token shares its arguments.
    const bool copies = g.module == "_codecs" || (g.module == "builtins" && !is_exception(g.name));
    for (const object& arg : copies ? a : std::vector<object>{}) {
        switch (arg.kind()) {
            case py::kind::list:
            case py::kind::tuple: charge(budget, arg.as_sequence().size()); break;
            case py::kind::set:
            case py::kind::frozenset: charge(budget, arg.as_set().size()); break;
            case py::kind::str: charge(budget, arg.as_str().size()); break;
            case py::kind::bytes:
            case py::kind::bytearray: charge(budget, arg.as_bytes().size()); break;
            default: break;
        }
    }
    const std::string& n = g.name;
    if (g.module == "builtins") {
        if (n == "set") return py::make_set(iterable(a, n));
        // multiprocessing pickles dict views (a manager dict's keys()) as list(items).
        if (n == "list") return py::make_list(iterable(a, n));
        if (n == "frozenset") return py::make_frozenset(iterable(a, n));
        if (n == "bytes") return object(byte_arguments(a, n));
        if (n == "bytearray") return object(py::bytearray{byte_arguments(a, n)});
        if (is_exception(n) || n == "slice") return instance_of(g, args);
    } else if (g.module == "_codecs") {
        if (a.size() == 2 && a[0].kind() == py::kind::str && is_latin1_name(a[1]))
            return object(latin1(a[0].as_str()));
        bad("_codecs.encode() other than of text to latin-1");
    } else if (g.module == "collections") {
        if (a.empty()) return py::make_dict({}, true);
        bad("collections.OrderedDict() with arguments");
    } else if (is_queue_exception(g.module, n)) {
        return instance_of(g, args);
    }
    bad("calling " + g.module + "." + n + " is not allowed");
}

py::object new_instance(const py::object& cls, const py::object& args) {
    const py::global& g = callee(cls);
    arguments(args);
    if (pickled_with_newobj(g) || (g.module == "builtins" && is_exception(g.name)))
        return instance_of(g, args);
    bad("creating a " + g.module + "." + g.name + " with NEWOBJ is not allowed");
}

void build_instance(py::object& target, const py::object& state) {
    auto* inst = std::get_if<std::shared_ptr<py::instance>>(&target.value());
    if (!inst) bad("BUILD on a " + std::string(py::kind_name(target.kind())));
    (*inst)->state = std::make_shared<const py::object>(state);
}

bool pickled_with_newobj(const py::global& cls) noexcept {
    return cls.module == "multiprocessing.managers" && cls.name == "Token";
}

}  // namespace mp::pickle::detail
