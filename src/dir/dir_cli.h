/*
 * dir_cli.h - `mxgate directory ...`: make a hashed directory and its
 * key, and ask the configured directory about one address.
 * Owns: the commands' arguments and output.  Never: runs in the gateway.
 */
#ifndef MXGATE_DIR_CLI_H
#define MXGATE_DIR_CLI_H

/* argv[0] is the sub-command ("hash", "lookup"); exit status. */
int	dir_cli_main(int argc, char **argv);

#endif
