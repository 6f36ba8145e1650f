"""Operations tools beside the pipeline: the doctor, the history report, the CloudFormation
export and the sample data the demo and the tests seed."""
