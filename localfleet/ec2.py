"""The fleet's EC2 side in moto: VPC, subnet, security group, one instance
per namespace host whose PrivateIpAddress IS that host's address (moto's
random public addresses are never used)."""
from __future__ import annotations

from dataclasses import dataclass

from .fleet import FleetHost


@dataclass
class Ec2Fleet:
    vpc_id: str
    subnet_id: str
    group_id: str
    instance_ids: dict[str, str]   # host name -> instance id


def register(ec2, hosts: list[FleetHost], environment: str, role: str = "web", app_port: int = 8080,
             open_app_port: bool = True) -> Ec2Fleet:
    vpc = ec2.create_vpc(CidrBlock="198.18.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="198.18.0.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName=f"hotdeploy-{environment}-{vpc[-6:]}",
                                      Description=f"{environment} app hosts", VpcId=vpc)["GroupId"]
    # The app port is public (unless OPEN_APP_PORT is false: a private fleet
    # that only its load balancer reaches), tcp/22 is closed until a deployer opens it.
    if open_app_port:
        ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": app_port, "ToPort": app_port,
             "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": "app"}]}])
    image = ec2.describe_images()["Images"][0]["ImageId"]
    ids = {}
    for host in hosts:
        [inst] = ec2.run_instances(
            ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro", SubnetId=subnet,
            PrivateIpAddress=host.address, SecurityGroupIds=[group],
            TagSpecifications=[{"ResourceType": "instance", "Tags": [
                {"Key": "Environment", "Value": environment}, {"Key": "Role", "Value": role},
                {"Key": "Name", "Value": host.name}]}])["Instances"]
        ids[host.name] = inst["InstanceId"]
    return Ec2Fleet(vpc, subnet, group, ids)
