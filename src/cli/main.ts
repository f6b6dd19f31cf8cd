console.log('hmmsim: the run command arrives with the parallel simulation (issue 3); not yet.');
