// Objects a multiproc ManagerServer serves to Python clients (docs/managers.md, "Python
// clients"): a Python program connects with multiprocessing.managers.BaseManager and uses them
// through its proxies; the C++ program that runs the server uses the same objects directly.
//
//   mp::ManagerServer server(mp::Address::parse("127.0.0.1:50000"), "abracadabra");
//   mp::PyQueue jobs;                          // QueueManager.register('get_queue', ...)
//   mp::PyDict results;                        // ... register('get_dict', proxytype=DictProxy)
//   server.register_py("get_queue", jobs);
//   server.register_py("get_dict", results);
//   std::thread serving([&] { server.serve_forever(); });
//   std::string job = jobs.get<std::string>();  // what a Python client put
//   results.set(job, 42);                      // the client reads d[job]
//
// Values are Python values (mp::py::object) on the server; get<T>() converts through the mapping
// table of multiproc/pickle.hpp (mp::DecodeError when the value is not a T), put/set take any C++
// value of that table. Not in <multiproc/multiproc.hpp> (it pulls in the pickle codec).
//
// Thread safety: every method may be called from any thread, beside the server's.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "multiproc/managers.hpp"
#include "multiproc/pickle.hpp"
#include "multiproc/timeout.hpp"

namespace mp {

namespace detail {
class PyServed;

/// A C++ value as the Python value it pickles to.
template <class T>
py::object to_py(const T& v) {
    if constexpr (std::is_convertible_v<const T&, py::object> && !std::is_pointer_v<T>)
        return py::object(v);
    else return pickle::loads(pickle::dumps(v));
}
}  // namespace detail

/// What a ManagerServer serves to Python clients (the base of PyQueue, PyDict, PyList and
/// PyNamespace). Copies share one object.
class PyShared {
public:
    /// The served object (what register_py hands to the server).
    [[nodiscard]] const std::shared_ptr<detail::PyServed>& served() const noexcept { return s_; }

protected:
    explicit PyShared(std::shared_ptr<detail::PyServed> s) noexcept : s_(std::move(s)) {}
    std::shared_ptr<detail::PyServed> s_;
};

/// Python's queue.Queue as a manager serves it (a Python client's AutoProxy: put, get, qsize,
/// empty, full, task_done, join, *_nowait, and 3.13's shutdown).
class PyQueue : public PyShared {
public:
    /// A queue of at most maxsize items (0: unbounded).
    explicit PyQueue(std::size_t maxsize = 0);
    /// Puts a value; waits while the queue is full (mp::Full after `timeout`, or at once when a
    /// Python client shut the queue down).
    template <class T>
    void put(const T& value, Timeout timeout = forever) {
        put_object(detail::to_py(value), timeout);
    }
    /// Takes the oldest value as a T; waits while the queue is empty (mp::Empty after `timeout`,
    /// or when it is empty and a Python client shut it down).
    template <class T = py::object>
    T get(Timeout timeout = forever) {
        return pickle::detail::convert<T>(get_object(timeout));
    }
    /// Puts a Python value.
    void put_object(py::object value, Timeout timeout = forever);
    /// Takes the oldest value.
    py::object get_object(Timeout timeout = forever);
    /// The number of values queued.
    [[nodiscard]] std::size_t qsize() const;
    /// Marks one taken value done (Python's task_done; join() waits for all).
    void task_done();
    /// Waits until every value put has been marked done.
    void join();
};

/// A Python dict as a manager serves it (a client's DictProxy).
class PyDict : public PyShared {
public:
    /// An empty dict.
    PyDict();
    /// d[key] = value.
    template <class K, class V>
    void set(const K& key, const V& value) {
        set_object(detail::to_py(key), detail::to_py(value));
    }
    /// d[key] as a V; std::out_of_range when absent.
    template <class V = py::object, class K>
    V get(const K& key) const {
        auto v = find_object(detail::to_py(key));
        if (!v) throw std::out_of_range("multiproc: PyDict has no such key");
        return pickle::detail::convert<V>(*v);
    }
    /// key in d.
    template <class K>
    [[nodiscard]] bool contains(const K& key) const {
        return find_object(detail::to_py(key)).has_value();
    }
    /// del d[key]; false when absent.
    template <class K>
    bool erase(const K& key) {
        return erase_object(detail::to_py(key));
    }
    /// len(d).
    [[nodiscard]] std::size_t size() const;
    /// A copy as a C++ map (std::map<K, V>, ...) or a py::object dict.
    template <class M = py::object>
    [[nodiscard]] M copy() const {
        return pickle::detail::convert<M>(copy_object());
    }
    /// d[key] = value, for Python values.
    void set_object(py::object key, py::object value);
    /// d[key], or nothing.
    [[nodiscard]] std::optional<py::object> find_object(const py::object& key) const;
    /// del d[key]; false when absent.
    bool erase_object(const py::object& key);
    /// A copy of the dict.
    [[nodiscard]] py::object copy_object() const;
};

/// A Python list as a manager serves it (a client's ListProxy).
class PyList : public PyShared {
public:
    /// An empty list.
    PyList();
    /// l.append(value).
    template <class T>
    void append(const T& value) {
        append_object(detail::to_py(value));
    }
    /// l[i] as a T (negative i from the end); std::out_of_range beyond.
    template <class T = py::object>
    [[nodiscard]] T get(std::ptrdiff_t i) const {
        return pickle::detail::convert<T>(get_object(i));
    }
    /// len(l).
    [[nodiscard]] std::size_t size() const;
    /// A copy as a C++ sequence (std::vector<T>, ...) or a py::object list.
    template <class V = py::object>
    [[nodiscard]] V copy() const {
        return pickle::detail::convert<V>(copy_object());
    }
    /// l.append(value), for a Python value.
    void append_object(py::object value);
    /// l[i].
    [[nodiscard]] py::object get_object(std::ptrdiff_t i) const;
    /// A copy of the list.
    [[nodiscard]] py::object copy_object() const;
};

}  // namespace mp
