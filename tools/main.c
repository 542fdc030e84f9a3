/* placeholder: the CLI is being written */
#include "convnet/convnet.h"
int main(void) { return 0; }
