// The seed's "Queues and Pipes" producer/consumer: producers put work items, consumers take
// them until a sentinel, and a JoinableQueue lets the main process wait until all work is done.
// Usage: producer_consumer [fork|spawn|forkserver]   (the start method, default: the default)
#include <cstdio>
#include <multiproc/bootstrap.hpp>
#include <multiproc/context.hpp>
#include <multiproc/process.hpp>
#include <multiproc/queues.hpp>
#include <string>
#include <vector>

struct Job {
    int id = 0;
    std::string text;
    template <class Ar>
    void serialize(Ar& ar) {
        ar(id, text);
    }
};

void producer(mp::JoinableQueue<Job> jobs, int first, int count) {
    for (int i = first; i < first + count; ++i) jobs.put({i, "job " + std::to_string(i)});
}

void consumer(mp::JoinableQueue<Job> jobs, mp::Queue<std::string> results) {
    for (;;) {
        Job j = jobs.get();
        if (j.id < 0) {  // the sentinel
            jobs.task_done();
            return;
        }
        results.put(j.text + " done by pid " + std::to_string(mp::current_process().pid()));
        jobs.task_done();
    }
}

int main(int argc, char** argv) {
    mp::init(argc, argv);
    const mp::Context ctx = mp::get_context(argc > 1 ? argv[1] : "");
    mp::JoinableQueue<Job> jobs;
    mp::Queue<std::string> results;

    std::vector<mp::Process> procs;
    for (int c = 0; c < 3; ++c) procs.push_back(ctx.Process(consumer, jobs, results));
    for (int p = 0; p < 2; ++p) procs.push_back(ctx.Process(producer, jobs, p * 10, 10));
    for (auto& p : procs) p.start();
    for (std::size_t p = 3; p < procs.size(); ++p) procs[p].join();  // the producers
    for (int c = 0; c < 3; ++c) jobs.put({-1, {}});

    jobs.join();  // every job, sentinels included, has been marked done
    std::size_t n = 0;
    while (!results.empty()) {
        std::printf("%s\n", results.get().c_str());
        ++n;
    }
    for (std::size_t c = 0; c < 3; ++c) procs[c].join();
    std::printf("%zu results\n", n);
    return n == 20 ? 0 : 1;
}
