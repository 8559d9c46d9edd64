// Must NOT compile: a plain struct holding a std::variant would travel with an unchecked index.
#include <variant>

#include "multiproc/reduction.hpp"

struct Shape {
    int id;
    std::variant<int, float> size;
};

int main() { return static_cast<int>(mp::dumps(Shape{1, 2.0f}).size()); }
