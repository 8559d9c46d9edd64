// mp::pickle's reader: the pickle machine (a stack, marks, a memo) run over values only.
//
// Nothing here imports or calls anything: GLOBAL and STACK_GLOBAL resolve through the fixed
// allowlist of pickle_globals.cpp, REDUCE/NEWOBJ/BUILD only apply its known constructors.
// Every declared length is checked against the bytes that remain before anything is
// allocated; each opcode adds at most one node or one item, so what a decode allocates is
// bounded by a constant times its input. A failed decode empties every container it built
// (break_containers), a successful one every container its result does not reach, so that no
// cycle it may have made outlives it.
#include <cstring>
#include <string>
#include <unordered_map>

#include "multiproc/errors.hpp"
#include "multiproc/pickle.hpp"
#include "pickle_globals.hpp"
#include "pickle_graph.hpp"
#include "pickle_opcodes.hpp"

namespace mp::pickle {

namespace {

using py::object;

[[noreturn]] void bad(const std::string& why) { throw DecodeError("mp::pickle: " + why); }

class Unpickler {
public:
    Unpickler(std::span<const std::byte> data, std::span<const std::span<const std::byte>> buffers)
        : p_(data.data()), end_(data.data() + data.size()), buffers_(buffers),
          copy_budget_(4 * data.size() + 4096) {}

    object run() {
        try {
            while (true) {
                const auto op = static_cast<std::uint8_t>(*take(1));
                if (op == op::STOP) break;
                step(op);
            }
            if (p_ != end_) bad("bytes after the end of the pickle (STOP)");
            object result = pop();
            // What the stack and the memo still hold beyond the result is dropped with this
            // decoder, and may be a cycle of its own ("]\x94h\x00aN." leaves a list that
            // contains itself under None): emptied like a failed decode's.
            detail::break_containers(nodes_, detail::check_graph(result));
            return result;
        } catch (...) {
            detail::break_containers(nodes_);
            throw;
        }
    }

private:
    // The opcode table, one short line per opcode.
    void step(std::uint8_t op) {
        switch (op) {
            case op::PROTO:
                if (static_cast<std::uint8_t>(*take(1)) > highest_protocol)
                    bad("unsupported pickle protocol");
                return;
            case op::FRAME:
                if (le(8) > remaining()) bad("a frame longer than the data");
                return;
            case op::NONE: return push(object());
            case op::NEWTRUE: return push(object(true));
            case op::NEWFALSE: return push(object(false));
            case op::BININT1: return push(object(static_cast<std::int64_t>(le(1))));
            case op::BININT2: return push(object(static_cast<std::int64_t>(le(2))));
            case op::BININT:
                return push(object(static_cast<std::int64_t>(static_cast<std::int32_t>(le(4)))));
            case op::LONG1: return long_int(le(1));
            case op::LONG4: return long_int(signed_length());
            case op::BINFLOAT: return floating();
            case op::SHORT_BINUNICODE: return str(le(1));
            case op::BINUNICODE: return str(le(4));
            case op::BINUNICODE8: return str(le(8));
            case op::SHORT_BINBYTES: return bytes(le(1));
            case op::BINBYTES: return bytes(le(4));
            case op::BINBYTES8: return bytes(le(8));
            case op::BYTEARRAY8: return bytearray(le(8));
            case op::NEXT_BUFFER: return next_buffer();
            case op::READONLY_BUFFER: return readonly_buffer();
            case op::EMPTY_LIST: return push(node(std::make_shared<py::list>()));
            case op::EMPTY_TUPLE: return push(node(std::make_shared<py::tuple>()));
            case op::EMPTY_DICT: return push(node(std::make_shared<py::dict>()));
            case op::EMPTY_SET: return push(node(std::make_shared<py::set>()));
            case op::MARK: marks_.push_back(stack_.size()); return;
            case op::POP:
                if (!marks_.empty() && marks_.back() == stack_.size()) marks_.pop_back();
                else pop();
                return;
            case op::POP_MARK: stack_.resize(pop_mark()); return;
            case op::DUP: return push(top());
            case op::TUPLE1: return tuple_of(1);
            case op::TUPLE2: return tuple_of(2);
            case op::TUPLE3: return tuple_of(3);
            case op::TUPLE: return tuple_of(stack_.size() - pop_mark());
            case op::LIST: return collect<py::list>();
            case op::FROZENSET: return collect<py::frozenset>();
            case op::DICT: return dict_from_mark();
            case op::APPEND: return append(1);
            case op::APPENDS: return append(stack_.size() - pop_mark());
            case op::SETITEM: return setitems(2);
            case op::SETITEMS: return setitems(stack_.size() - pop_mark());
            case op::ADDITEMS: return additems(stack_.size() - pop_mark());
            case op::BINGET: return get(le(1));
            case op::LONG_BINGET: return get(le(4));
            case op::GET: return get(decimal_line());
            case op::BINPUT: return put(le(1));
            case op::LONG_BINPUT: return put(le(4));
            case op::PUT: return put(decimal_line());
            case op::MEMOIZE: return put(memo_.size());
            case op::GLOBAL: return text_global();
            case op::STACK_GLOBAL: return stack_global();
            case op::REDUCE: return reduce();
            case op::NEWOBJ: return newobj(false);
            case op::NEWOBJ_EX: return newobj(true);
            case op::BUILD: return build();
            default: {
                static const char* digits = "0123456789abcdef";
                bad(std::string("unsupported opcode 0x") + digits[op >> 4] + digits[op & 15] +
                    " (protocols 2 to 5 of plain data only)");
            }
        }
    }

    // ---- input ----
    [[nodiscard]] std::size_t remaining() const noexcept {
        return static_cast<std::size_t>(end_ - p_);
    }
    const std::byte* take(std::uint64_t n) {
        if (n > remaining()) bad("truncated pickle (a length or opcode runs past the end)");
        const std::byte* at = p_;
        p_ += n;
        return at;
    }
    std::uint64_t le(int n) {
        const std::byte* b = take(static_cast<std::uint64_t>(n));
        std::uint64_t v = 0;
        for (int i = 0; i < n; ++i) v |= std::to_integer<std::uint64_t>(b[i]) << (8 * i);
        return v;
    }
    std::uint64_t signed_length() {
        const auto n = static_cast<std::int32_t>(le(4));
        if (n < 0) bad("a negative length");
        return static_cast<std::uint64_t>(n);
    }
    // A text line ending in '\n' (protocol 0 forms: GLOBAL's names, PUT/GET's decimal index).
    std::string_view line() {
        const auto* nl = static_cast<const std::byte*>(std::memchr(p_, '\n', remaining()));
        if (!nl) bad("truncated pickle (a line without its end)");
        std::string_view s(reinterpret_cast<const char*>(p_), static_cast<std::size_t>(nl - p_));
        p_ = nl + 1;
        return s;
    }
    std::uint64_t decimal_line() {
        const std::string_view s = line();
        if (s.empty() || s.size() > 10) bad("a bad memo index");
        std::uint64_t v = 0;
        for (char c : s) {
            if (c < '0' || c > '9') bad("a bad memo index");
            v = v * 10 + static_cast<std::uint64_t>(c - '0');
        }
        return v;
    }

    // ---- stack ----
    void push(object o) { stack_.push_back(std::move(o)); }
    object pop() {
        if (stack_.empty() || (!marks_.empty() && marks_.back() == stack_.size()))
            bad("stack underflow (an opcode with too few values before it)");
        object o = std::move(stack_.back());
        stack_.pop_back();
        return o;
    }
    object& top() {
        if (stack_.empty() || (!marks_.empty() && marks_.back() == stack_.size()))
            bad("stack underflow (an opcode with too few values before it)");
        return stack_.back();
    }
    std::size_t pop_mark() {
        if (marks_.empty()) bad("a mark was expected and is missing");
        const std::size_t m = marks_.back();
        marks_.pop_back();
        return m;
    }
    // Records a new container so a failed decode can empty it (see the top of this file).
    template <class N>
    object node(std::shared_ptr<N> n) {
        object o(std::move(n));
        nodes_.push_back(o);
        return o;
    }
    // The n values on top of the stack, moved out (the stack shrinks by n).
    std::vector<object> take_items(std::size_t n) {
        if (n > stack_.size() || (!marks_.empty() && stack_.size() - n < marks_.back()))
            bad("stack underflow (an opcode with too few values before it)");
        std::vector<object> items(std::make_move_iterator(stack_.end() - static_cast<long>(n)),
                                  std::make_move_iterator(stack_.end()));
        stack_.resize(stack_.size() - n);
        return items;
    }
    template <class N>
    std::shared_ptr<N> target(const char* opcode, const char* wanted) {
        const auto* p = std::get_if<std::shared_ptr<N>>(&top().value());
        if (!p)
            bad(std::string(opcode) + " on a " + std::string(py::kind_name(top().kind())) +
                " (only a " + wanted + ")");
        return *p;
    }

    // ---- values ----
    void long_int(std::uint64_t n) {
        const std::byte* b = take(n);
        push(object(py::bigint{std::vector<std::byte>(b, b + n)}));
    }
    void floating() {
        const std::uint64_t be = le(8);
        std::uint64_t u = 0;
        for (int i = 0; i < 8; ++i) u = (u << 8) | ((be >> (8 * i)) & 0xff);
        double d;
        std::memcpy(&d, &u, 8);
        push(object(d));
    }
    void str(std::uint64_t n) {
        const auto* b = reinterpret_cast<const char*>(take(n));
        push(object(std::string(b, n)));
    }
    void bytes(std::uint64_t n) {
        const std::byte* b = take(n);
        push(object(std::vector<std::byte>(b, b + n)));
    }
    void bytearray(std::uint64_t n) {
        const std::byte* b = take(n);
        push(object(py::bytearray{std::vector<std::byte>(b, b + n)}));
    }
    // Python pushes the buffer object given to loads; a writable buffer is a bytearray here.
    void next_buffer() {
        if (next_buffer_ >= buffers_.size())
            bad("NEXT_BUFFER without an out-of-band buffer (pass them to loads)");
        const auto b = buffers_[next_buffer_++];
        push(object(py::bytearray{std::vector<std::byte>(b.begin(), b.end())}));
    }
    void readonly_buffer() {
        object& o = top();
        if (auto* ba = std::get_if<std::shared_ptr<py::bytearray>>(&o.value()))
            o = object(std::move((*ba)->value));
        else if (o.kind() != py::kind::bytes) bad("READONLY_BUFFER on a non-buffer");
    }

    // ---- containers ----
    void tuple_of(std::size_t n) {
        push(node(std::make_shared<py::tuple>(py::tuple{take_items(n)})));
    }
    template <class N>
    void collect() {
        const std::size_t m = pop_mark();
        push(node(std::make_shared<N>(N{take_items(stack_.size() - m)})));
    }
    void dict_from_mark() {
        const std::size_t m = pop_mark();
        auto dict = std::make_shared<py::dict>();
        fill(*dict, take_items(stack_.size() - m));
        push(node(std::move(dict)));
    }
    // The n items on top of the stack go straight into the list below them.
    void append(std::size_t n) {
        if (n + 1 > stack_.size() || (!marks_.empty() && stack_.size() - n - 1 < marks_.back()))
            bad("APPEND without a list below its items");
        const auto first = stack_.end() - static_cast<long>(n);
        const auto* list = std::get_if<std::shared_ptr<py::list>>(&first[-1].value());
        if (!list) bad("APPEND on a " + std::string(py::kind_name(first[-1].kind())));
        auto& items = (*list)->items;
        items.insert(items.end(), std::make_move_iterator(first),
                     std::make_move_iterator(stack_.end()));
        stack_.erase(first, stack_.end());
    }
    void setitems(std::size_t n) {
        std::vector<object> items = take_items(n);
        fill(*target<py::dict>("SETITEM", "dict"), std::move(items));
    }
    static void fill(py::dict& dict, std::vector<object> items) {
        if (items.size() % 2) bad("a dict with an odd number of keys and values");
        for (std::size_t i = 0; i < items.size(); i += 2)
            dict.items.emplace_back(std::move(items[i]), std::move(items[i + 1]));
    }
    void additems(std::size_t n) {
        std::vector<object> items = take_items(n);
        auto set = target<py::set>("ADDITEMS", "set");
        set->items.insert(set->items.end(), std::make_move_iterator(items.begin()),
                          std::make_move_iterator(items.end()));
    }

    // ---- memo ----
    // Python's picklers number memo entries 0, 1, 2 ...: those live in a vector; any other
    // index (a hand-made pickle) in a map, so a huge index costs nothing.
    void put(std::uint64_t i) {
        const object& o = top();
        if (i == memo_.size()) memo_.push_back(o);
        else if (i < memo_.size()) memo_[i] = o;
        else sparse_memo_[i] = o;
    }
    void get(std::uint64_t i) {
        if (i < memo_.size()) return push(memo_[i]);
        const auto it = sparse_memo_.find(i);
        if (it == sparse_memo_.end())
            bad("a memo reference to nothing (index " + std::to_string(i) + ")");
        push(it->second);
    }

    // ---- globals and the calls of allowlisted ones ----
    void text_global() {
        const std::string module(line());
        const std::string name(line());
        push(detail::find_global(module, name));
    }
    void stack_global() {
        const object name = pop();
        const object module = pop();
        if (module.kind() != py::kind::str || name.kind() != py::kind::str)
            bad("STACK_GLOBAL with names that are not str");
        push(detail::find_global(module.as_str(), name.as_str()));
    }
    void reduce() {
        const object args = pop();
        const object callable = pop();
        push(track(detail::call_global(callable, args, copy_budget_)));
    }
    void newobj(bool with_kwargs) {
        if (with_kwargs) {
            const object kwargs = pop();
            if (kwargs.kind() != py::kind::dict || !kwargs.as_dict().empty())
                bad("NEWOBJ_EX with keyword arguments");
        }
        const object args = pop();
        const object cls = pop();
        push(track(detail::new_instance(cls, args)));
    }
    void build() {
        const object state = pop();
        detail::build_instance(top(), state);
    }
    object track(object o) {
        if (detail::container(o)) nodes_.push_back(o);
        return o;
    }

    const std::byte* p_;
    const std::byte* end_;
    std::span<const std::span<const std::byte>> buffers_;
    std::size_t next_buffer_ = 0;
    // What allowlisted calls may copy in all (see call_global): four times the input, for
    // protocol 2's bytearray(_codecs.encode(text, 'latin1')), whose text is up to twice the bytes.
    std::size_t copy_budget_;
    std::vector<object> stack_;
    std::vector<std::size_t> marks_;
    std::vector<object> memo_;
    std::unordered_map<std::uint64_t, object> sparse_memo_;
    std::vector<object> nodes_;
};

}  // namespace

py::object loads(std::span<const std::byte> data,
                 std::span<const std::span<const std::byte>> buffers) {
    return Unpickler(data, buffers).run();
}

}  // namespace mp::pickle
