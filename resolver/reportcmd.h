/* reportcmd: the `telesink report` command line (see report.h for the report itself). */
#ifndef TELESINK_REPORTCMD_H
#define TELESINK_REPORTCMD_H

/* argv[0] is "report". Returns the exit code. */
int report_main(int argc, char **argv);

#endif
