// A Python program feeds work to a C++ Pool (README "Talking to Python"): this program listens
// with an authkey, a Python script (feed.py, next to this file) connects with
// multiprocessing.connection.Client and sends batches of numbers with conn.send; a Pool of
// worker processes computes each number's Collatz step count, and the results go back with
// send_py, where the script checks them against its own. run.sh runs both (as ctest does):
//
//   ./python_feeds_cpp KEY                       prints "listening at 127.0.0.1:PORT"
//   python3 feed.py 127.0.0.1:PORT KEY           sends batches, then None to stop
#include <multiproc/multiproc.hpp>
#include <multiproc/pickle.hpp>  // send_py / recv_py: not in the umbrella header

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

// Steps of the Collatz map from n down to 1: the same function as feed.py's.
std::int64_t collatz_steps(std::int64_t n) {
    std::int64_t steps = 0;
    for (; n > 1; ++steps) n = n % 2 ? 3 * n + 1 : n / 2;
    return steps;
}

int main(int argc, char** argv) {
    mp::init(argc, argv);
    const std::string key = argc > 1 ? argv[1] : "python feeds cpp";
    mp::Listener listener(mp::Address::tcp("127.0.0.1", 0), 1, key);
    std::printf("listening at %s\n", listener.address().to_string().c_str());
    std::fflush(stdout);

    mp::Connection conn = listener.accept();  // Python: Client(address, authkey=KEY)
    mp::Pool pool(2);
    std::size_t batches = 0, items = 0;
    try {
        // Python: conn.send([n, ...]) for each batch, then conn.send(None).
        while (auto batch = conn.recv_py<std::optional<std::vector<std::int64_t>>>()) {
            conn.send_py(pool.map(collatz_steps, *batch));  // Python: conn.recv() -> [steps, ...]
            ++batches;
            items += batch->size();
        }
    } catch (const mp::EOFError&) {
        // The script ended without its None (it failed): the Pool still shuts down cleanly.
        std::printf("the Python side went away after %zu batches\n", batches);
        return 1;
    }
    std::printf("served %zu batches, %zu items\n", batches, items);
}
