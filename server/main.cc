// retryd: the retry and dead-letter control plane server (see server_main.h).
#include "server/server_main.h"

int main(int argc, char** argv) { return retryd::RetrydMain(argc, argv); }
