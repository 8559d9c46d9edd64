// Python's iterator as a manager server serves it (an IteratorProxy's `__next__`, behind a
// DictProxy's `for k in d`), over a snapshot of the items it yields.
#include "manager_py.hpp"

namespace mp::detail {

namespace {

using py::object;

class PyIteratorState final : public PyServed {
public:
    PyIteratorState(std::vector<object> items, std::function<bool()> changed)
        : items_(std::move(items)), changed_(std::move(changed)) {}

    [[nodiscard]] std::string_view type_name() const override { return "dict_keyiterator"; }
    // IteratorProxy's methods; a dict's iterator has no send, throw or close (as in Python, a
    // call of one is an AttributeError the client sees as a RemoteError).
    [[nodiscard]] std::span<const std::string_view> exposed() const override {
        static constexpr std::string_view kExposed[] = {"__next__", "send", "throw", "close"};
        return kExposed;
    }
    // iter(remaining items), as Python pickles a dict's iterator.
    [[nodiscard]] object value() const override {
        std::lock_guard lk(m_);
        std::vector<object> rest(items_.begin() + static_cast<std::ptrdiff_t>(next_), items_.end());
        return object(std::make_shared<py::instance>(
            py::instance{{"builtins", "iter"},
                         std::make_shared<py::tuple>(py::tuple{{py::make_list(std::move(rest))}}),
                         nullptr}));
    }
    [[nodiscard]] std::string repr() const override { return "<dict_keyiterator object>"; }

    object call(std::string_view m, const PyArgs& a, const PyCallContext&) override {
        if (m != "__next__")
            throw PyNoMethod("'dict_keyiterator' object has no attribute '" + std::string(m) + "'");
        a.at_most(0);
        std::lock_guard lk(m_);
        if (exhausted_) py_raise("StopIteration");
        if (failed_ || changed_()) {
            failed_ = true;  // sticky, as Python's
            py_raise("RuntimeError", {"dictionary changed size during iteration"});
        }
        if (next_ == items_.size()) {
            exhausted_ = true;  // and lets go of the dict, as Python's does
            items_.clear();
            next_ = 0;
            changed_ = nullptr;
            py_raise("StopIteration");
        }
        return items_[next_++];
    }

private:
    mutable std::mutex m_;
    std::vector<object> items_;
    std::size_t next_ = 0;
    std::function<bool()> changed_;
    bool failed_ = false, exhausted_ = false;
};

}  // namespace

std::shared_ptr<PyServed> make_py_iterator(std::vector<object> items,
                                           std::function<bool()> changed) {
    return std::make_shared<PyIteratorState>(std::move(items), std::move(changed));
}

}  // namespace mp::detail
